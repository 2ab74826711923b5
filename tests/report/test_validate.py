"""The known-order bank (benchmarks/report_validate.py) in CI: on scenes whose order is known by construction the
report makes no decisive claim that contradicts it, and no rank inversion; plus the judge on made-up rows."""

from benchmarks import report_validate as rv


def test_known_relations_by_construction():
    assert rv.relation("copy", "blur1") == 1 and rv.relation("blur1", "copy") == -1
    assert rv.relation("copy", "short") == 0 and rv.relation("short", "noise15") == 1
    assert rv.relation("blur1", "blur2.5") == 1 and rv.relation("noise15", "noise6") == -1
    assert rv.relation("q95", "jpeg15") == 1 and rv.relation("jpeg50", "q95") == -1
    assert rv.relation("partblur", "blur4") == 1 and rv.relation("partblur", "blur1") is None
    assert rv.relation("blur1", "noise3") is None and rv.relation("down2", "down4") == 1


def test_judge_counts_agreement_falsehood_abstention_and_rank_inversions():
    def pair(a, b, decision, value="0.1"):
        return {"scene": "s", "metric": "m", "field": "delta", "method": a, "against": b, "decision": decision,
                "value": value, "why": ""}

    def rank(m, r):
        return {"scene": "s", "metric": "m", "field": "rank", "method": m, "against": "", "value": r}

    rows = [pair("blur1", "copy", "worse"), pair("copy", "short", "better"), pair("blur1", "blur2.5", "tie"),
            pair("blur1", "noise3", "better"), pair("copy", "blur1", "better"),  # mirror of the first: not counted
            rank("copy", "2"), rank("blur1", "1"), rank("short", "")]
    counts, false = rv.judge(rows)
    assert counts["m"] == {"agree": 1, "false": 1, "abstain": 1, "unverifiable": 1, "rank_inversions": 1}
    assert any("copy better than short" in f for f in false) and any("rank 1 for blur1" in f for f in false)


def test_small_bank_has_no_false_decisive_claim(released_dir, tmp_path):
    cfg = rv.ValidateConfig(size="small", work=str(tmp_path / "bank"), out=str(tmp_path))
    res = rv.validate(cfg)
    assert res["exit_code"] == 0, res
    assert res["false"] == [], "\n".join(res["false"])
    counts = res["counts"]
    assert set(counts) == {"jod", "psnr", "ssim"}
    # the full-reference metrics decide every known strict pair of this bank (graded distortions are far apart)
    for m in ("psnr", "ssim"):
        assert counts[m]["agree"] >= 10 and counts[m]["abstain"] <= 2, (m, counts[m])
