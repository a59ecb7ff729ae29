"""What the benchmark reports (bench_storage.py, bench_tune.py) share."""


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
