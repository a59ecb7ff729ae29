"""What the benchmark reports (bench_storage.py, bench_tune.py) share."""
import random


def per_round(runs, *picks):
    """For each round in which every pick (a predicate on a run) matched a run: the images/s of
    each pick's first match, as a tuple in the order of picks. Runs of one round ran back to back,
    so ratios within a round cancel most of the machine's drift between rounds."""
    by = {}
    for r in runs:
        for i, pick in enumerate(picks):
            if pick(r):
                by.setdefault(r["round"], {}).setdefault(i, r["images_per_second"])
    return [tuple(v[i] for i in range(len(picks))) for _, v in sorted(by.items()) if len(v) == len(picks)]


def bootstrap_interval(values, statistic, level=0.95, resamples=4000, seed=1):
    """The central `level` interval of statistic(values) over `resamples` resamples of values, drawn
    with replacement: how far the statistic could move on another run of as many rounds on this
    machine. Seeded, so the same runs always print the same interval."""
    rng = random.Random(seed)
    stats = sorted(statistic([rng.choice(values) for _ in values]) for _ in range(resamples))
    return stats[int((1 - level) / 2 * resamples)], stats[int((1 + level) / 2 * resamples) - 1]


def verdict(interval, target):
    """'met' only when the whole interval reaches the target, 'NOT met' when none of it does."""
    lo, hi = interval
    return "met" if lo >= target else "NOT met" if hi < target else "on the line"
