"""The scene report: which method renders a scene best, how sure that is, and where each one fails.

    python report.py SCENE/ [--gt GT/] [--references PHOTOS/] [--out report/]

One page (``index.html``, static, self-contained) with report.csv, frames.csv and report.json beside it. Each
method of a scene gets the NVS-SQA JOD with a bootstrap interval, the full-reference metrics of a preset with
ground truth, the CrossScore mean with references; methods are ranked per metric with pairwise decisions that
say "tie" when the data cannot tell; the quality curves and the worst windows and frames show where each fails.

Modules:
    config     ReportConfig: report.py's flags
    scene      the methods of a scene and their ground truth, from the render trees people have on disk
    measure    every number of one method, computed once and cached per part (content + checkpoint + preset)
    stats      bootstrap intervals, paired decisions, ranks with ties, Kendall tau, JOD -> preference
    summary    a scene's numbers: values, intervals, ranks, pairs, agreement, worst windows and frames
    figures    curves and failure panels as PNG bytes (matplotlib, Agg)
    panels     the failure panels of one method: render, ground truth, error map, CrossScore map
    page       the HTML building blocks (every number tagged with its scene, method, metric and field)
    outputs    report.csv, frames.csv and the page's body from the numbers
    run        scenes -> measured -> summaries -> files, written as one unit
"""
