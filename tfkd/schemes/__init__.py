"""Training schemes beyond one offline teacher: ensembles, cached, online and self-distillation."""
