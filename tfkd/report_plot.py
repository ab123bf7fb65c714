"""The figure of a `tfkd.Report`: accuracy against size, and size and speed bars per stage."""

_LABEL = "tfkd-stage-label"  # the gid that marks the stage labels of the accuracy-size panel


def draw_report(title, rows, reference, path):
    """Draws the report's figure into the PNG file `path` (no global matplotlib state touched).

    Args:
        title: The figure's title.
        rows: The stages, each with `smaller` (see `tfkd.report.with_size_ratio`).
        reference: The reference stage, or `None`.
        path: The PNG file to write.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("Report.plot needs matplotlib: `pip install matplotlib`.") from error

    sized = [r for r in rows if r.get("gzip_bytes")]
    timed = [r for r in rows if r.get("latency_us")]
    bars = [b for b in (sized and "size", timed and "time") if b]
    fig = Figure(figsize=(12, 4.6 + (0.32 * len(rows) + 1.2 if bars else 0)))
    grid = fig.add_gridspec(2 if bars else 1, max(len(bars), 1),
                            height_ratios=[4.6, 0.32 * len(rows) + 1.2] if bars else [1])
    palette = matplotlib.colormaps["tab10"]
    colors = {r["name"]: palette(i % 10) for i, r in enumerate(rows)}
    _draw_tradeoff(fig.add_subplot(grid[0, :]), rows, reference, colors)
    names = [r["name"] for r in rows]
    for column, kind in enumerate(bars):
        ax = fig.add_subplot(grid[1, column])
        if kind == "size":
            labels = [
                " reference" if reference and r["name"] == reference["name"]
                else (f" {r['smaller']:.1f}x smaller" if (r.get("smaller") or 0) >= 1
                      else f" {1 / r['smaller']:.1f}x larger" if r.get("smaller") else "")
                for r in sized
            ]
            _draw_bars(ax, sized, names, "gzip_bytes", 1 / 1024, "gzip size (KiB)", colors,
                       labels)
            ax.set_title("Download size")
        else:
            labels = [f" {r['latency_us']:,.0f} us" for r in timed]
            _draw_bars(ax, timed, names, "latency_us", 1.0, "batch-1 latency (us)", colors,
                       labels)
            ax.set_title("Speed: one sample, each as .tflite/.onnx, 1 thread")
        if column:
            ax.tick_params(labelleft=False)
    fig.suptitle(title, fontweight="bold")
    fig.tight_layout()
    _separate_labels(fig)
    fig.savefig(path, dpi=120, format="png")
    return fig


def label_boxes(fig):
    """The display-space boxes of the stage labels of the accuracy-size panel."""
    renderer = _renderer(fig)
    return [_text_box(label, renderer) for label in fig.findobj(_is_label)]


def _separate_labels(fig, step_points=11, tries=12):
    """Moves each stage label up or down, in steps, until its box overlaps no earlier label and
    no marker."""
    from matplotlib.transforms import Bbox

    renderer = _renderer(fig)
    labels = fig.findobj(_is_label)
    radius = 6 * fig.dpi / 72  # a marker's half width, in pixels
    placed = [  # the markers themselves are in the way too
        Bbox.from_extents(x - radius, y - radius, x + radius, y + radius)
        for x, y in (label.axes.transData.transform(label.xy) for label in labels)
    ]
    for label in labels:
        x_offset, y_offset = label.xyann
        for attempt in range(tries):
            box = _text_box(label, renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            direction = -1 if attempt % 2 == 0 else 1  # 1 down, 1 up, 2 down, 2 up, ...
            label.xyann = (x_offset, y_offset + direction * step_points * (attempt // 2 + 1))
        placed.append(_text_box(label, renderer))


def _text_box(label, renderer):
    """The box of an annotation's text alone (its own extent includes the leader line)."""
    from matplotlib.text import Text

    label.update_positions(renderer)  # where its offset puts it now (else: the last draw's place)
    return Text.get_window_extent(label, renderer)


def _is_label(artist):
    return artist.get_gid() == _LABEL


def _renderer(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return canvas.get_renderer()


def _draw_bars(ax, rows, names, key, scale, label, colors, texts):
    """Horizontal bars, one row per stage in `names` (stages without a value leave a gap)."""
    from matplotlib.ticker import FuncFormatter

    values = [r[key] * scale for r in rows]
    positions = [names.index(r["name"]) for r in rows]
    ax.barh(positions, values, color=[colors[r["name"]] for r in rows])
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    if max(values) / max(min(values), 1e-12) > 20:
        ax.set_xscale("log")
        label += ", log"
    ax.set_xlim(right=max(values) * (8 if ax.get_xscale() == "log" else 1.45))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(label)
    for position, value, text in zip(positions, values, texts, strict=True):
        ax.text(value, position, text, va="center", fontsize=8)


def _draw_tradeoff(ax, rows, reference, colors):
    from matplotlib.ticker import FuncFormatter, LogLocator

    points = [r for r in rows if r.get("gzip_bytes") and r.get("accuracy") is not None]
    for r in points:
        xy = (r["gzip_bytes"] / 1024, 100 * r["accuracy"])
        ax.scatter(*xy, s=70, color=colors[r["name"]], zorder=3, edgecolor="black", linewidth=0.5)
    for group in _nearby_groups(points):
        xy = (group[0]["gzip_bytes"] / 1024, 100 * group[0]["accuracy"])
        ax.annotate(" + ".join(r["name"] for r in group), xy, textcoords="offset points",
                    xytext=(8, 4), fontsize=9, gid=_LABEL,
                    arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5})
    if reference and reference.get("accuracy") is not None:
        ax.axhline(100 * reference["accuracy"], color="grey", linestyle="--", linewidth=1,
                   label=f"{reference['name']} accuracy")
        ax.legend(loc="lower right", fontsize=8)
    if points:
        ax.set_xscale("log")
        sizes = [r["gzip_bytes"] / 1024 for r in points]
        ax.set_xlim(min(sizes) / 1.6, max(sizes) * 2.2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        accuracies = [100 * r["accuracy"] for r in points]
        middle, span = (max(accuracies) + min(accuracies)) / 2, max(accuracies) - min(accuracies)
        half = max(span * 0.6, 1.0)  # at least 2 points tall, so noise does not look like a cliff
        ax.set_ylim(middle - half, middle + half)
    else:
        ax.text(0.5, 0.5, "no stage has both accuracy and size", ha="center",
                transform=ax.transAxes)
    ax.set_xlabel("gzip size (KiB, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against size (up and left is better)")
    ax.grid(True, which="both", alpha=0.3)


def _nearby_groups(points):
    """Points that would share a label spot (within 15% in size and 0.05 points), grouped."""
    groups = []
    for point in sorted(points, key=lambda r: r["gzip_bytes"]):
        last = groups[-1][0] if groups else None
        if (last and point["gzip_bytes"] <= 1.15 * last["gzip_bytes"]
                and abs(point["accuracy"] - last["accuracy"]) <= 0.0005):
            groups[-1].append(point)
        else:
            groups.append([point])
    return groups
