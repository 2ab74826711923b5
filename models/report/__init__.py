"""The scene report: which method renders a scene best, how sure that is, and where each one fails.

    python report.py SCENE/ [--gt GT/] [--references PHOTOS/] [--out report/]

One page (``index.html``, static, self-contained) with report.csv, frames.csv and report.json beside it. Each
method of a scene gets the NVS-SQA JOD, the full-reference metrics of a preset and FovVideoVDP with ground truth,
the CrossScore mean with references; per metric the methods are compared pairwise over the units (frames, windows)
both have, and a comparison decides only when its interval, the noise floor, the value's flags and NVS-SQA's
measured blind spots allow it; the top box says what the ranking rests on and where NVS-SQA is not to be trusted;
the quality curves and the worst windows and frames (beyond a measured floor) show where each fails.

Modules:
    config      ReportConfig: report.py's flags
    scene       the methods of a scene and their ground truth, from the render trees people have on disk
    measure     every number of one method, computed once and cached per part (content + checkpoint + preset)
    onepass     one decode of a method's frames, handed to NVS-SQA, the full-reference metrics, FovVideoVDP, CrossScore
    series      the measured parts as typed records: per metric and method the values per unit, the headline
    stats       expanded-percentile bootstrap intervals, paired decisions and their guards, ranks, Kendall tau
    summary     a scene's numbers: entries, comparisons guarded by flags and blind spots, agreement, failures
    records     the summary's records (Entry, MetricSummary, Agreement, SceneSummary)
    statements  the top box in words: what the ranking rests on, the best, the flagged, JOD's agreement
    failures    worst windows and worst frames, shown only beyond a measured floor (floors_v1.json)
    figures     curves and failure panels as PNG bytes (matplotlib, Agg)
    panels      the failure panels of one method: render, ground truth, error map, CrossScore map
    page        the HTML building blocks (every number tagged with its scene, method, metric and field)
    outputs     report.csv, frames.csv, report.json's summary and the page's body from the records
    build       this run's scenes as the pieces a page is made of: figures, panels, maps, section, rows, provenance
    folder      a report folder accumulates: every scene reported into it kept, merged under its lock as one unit
    run         scenes -> measured -> summaries -> the report folder
"""
