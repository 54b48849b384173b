"""Results of the benchmark scripts: lines "WHAT TARGET VALUE" (VALUE a number, or "fail" /
"errors" for a run that did not give one), their medians and how they are printed."""
import statistics
from collections import defaultdict


def load(path):
    """The values of a results file by (what, target)."""
    vals = defaultdict(list)
    for line in open(path):
        what, target, value = line.split()
        vals[(what, target)].append(value)
    return vals


def med(vals, what, target):
    """(median, None), or (None, why) when no run or any failed run: shown with how many."""
    v = vals.get((what, target), [])
    nums = [float(x) for x in v if x not in ("fail", "errors")]
    if not v:
        return None, "-"
    if len(nums) < len(v):
        bad = "errors" if "errors" in v else "fail"
        return None, f"{bad} {len(v) - len(nums)}/{len(v)}"
    return statistics.median(nums), None


def fmt(x):
    return f"{x:,.0f}" if x >= 1000 else (f"{x:.1f}" if x >= 10 else f"{x:.3f}")


def medians(path):
    """med(what, target) over the results file at `path`."""
    vals = load(path)
    return lambda what, target: med(vals, what, target)
