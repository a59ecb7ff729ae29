"""The benchmark reports (scripts/bench_storage.py, scripts/bench_tune.py, scripts/bench_peers.py) on
made-up runs: the ratios a target is judged on, which a real run only reaches after many minutes; and
the peers' view of the inputs, which must be ringfeed's."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts")
sys.path.insert(0, SCRIPTS)

from bench_common import per_round  # noqa: E402
from bench_peers import list_files  # noqa: E402


def report(script, runs, *args, command=()):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("".join(json.dumps(r) + "\n" for r in runs))
    try:
        out = subprocess.run([sys.executable, os.path.join(SCRIPTS, script), *command, f.name, *args],
                             capture_output=True, text=True, check=True)
        return out.stdout
    finally:
        os.unlink(f.name)


def pair_runs(ratios, plain=1000):
    runs = []
    for i, x in enumerate(ratios):
        common = {"round": i, "system": "ringfeed", "backend": "io_uring", "loader_threads": 1,
                  "io_depth": 64, "direct_io": False, "images": 3000, "failed": 0}
        runs.append(dict(common, storage="pair_plain", delay_ms=0.0, images_per_second=plain))
        runs.append(dict(common, storage="pair_slowfs", delay_ms=2.0, images_per_second=plain * x))
    return runs


class PerRound(unittest.TestCase):
    def test_first_match_of_each_pick_in_complete_rounds_in_round_order(self):
        runs = [{"round": 2, "k": "a", "images_per_second": 5}, {"round": 2, "k": "b", "images_per_second": 6},
                {"round": 1, "k": "b", "images_per_second": 3}, {"round": 1, "k": "a", "images_per_second": 2},
                {"round": 1, "k": "a", "images_per_second": 99}, {"round": 3, "k": "a", "images_per_second": 7}]
        got = per_round(runs, lambda r: r["k"] == "a", lambda r: r["k"] == "b")
        self.assertEqual(got, [(2, 3), (5, 6)])  # round 3 has no "b"


class StorageTarget(unittest.TestCase):
    def test_judged_on_the_median_pair_with_an_interval(self):
        out = report("bench_storage.py", pair_runs([0.95, 0.85, 0.91, 0.92, 0.80]))
        self.assertIn("5 pairs run back to back: plain 1000, slowfs 910 images/s (medians; 0.910x)", out)
        self.assertIn("per pair: 0.950 0.850 0.910 0.920 0.800", out)
        self.assertIn("3 of 5 pairs at or above 0.9", out)
        # The median of five pairs this spread could as well have been 0.80 or 0.95: not enough to call it.
        self.assertIn("median pair: measured 0.910x, 95 % bootstrap interval 0.800-0.950  on the line", out)

    def test_met_only_when_the_whole_interval_reaches_the_target(self):
        out = report("bench_storage.py", pair_runs([0.91, 0.93, 0.92, 0.95, 0.94, 0.92, 0.93]))
        self.assertIn("measured 0.930x, 95 % bootstrap interval 0.920-0.940  met", out)

    def test_below_the_target_is_not_met(self):
        out = report("bench_storage.py", pair_runs([0.89, 0.85, 0.70, 0.88, 0.86]))
        self.assertIn("measured 0.860x, 95 % bootstrap interval 0.700-0.890  NOT met", out)

    def test_the_json_carries_the_verdict(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.json")
            report("bench_storage.py", pair_runs([0.91, 0.93, 0.92, 0.95, 0.94, 0.92, 0.93]), "--json", path)
            with open(path) as f:
                got = json.load(f)
        self.assertEqual(got["target_verdict"], "met")
        self.assertAlmostEqual(got["target_ratio"], 0.93)
        self.assertEqual([round(x, 3) for x in got["target_interval"]], [0.92, 0.94])


class TuneHeadToHead(unittest.TestCase):
    def test_per_round_ratios_of_auto_to_the_best_fixed(self):
        runs = []
        tuned = {"decoder_threads": 2, "loader_threads": 1, "io_depth": 16, "changes": 0}
        common = {"failed": 0, "peak_rss_kib": 40960, "images": 3000, "tuned": tuned}
        for rd, ips in enumerate([900, 1000]):
            runs.append(dict(common, regime="decode", config="io_uring dec=2 ld=1 depth=16", round=rd,
                             images_per_second=ips, sets=["loader.io_depth=16"]))
        for rd, (auto, best) in enumerate([(1100, 1000), (900, 1000), (1000, 1000)]):
            runs.append(dict(common, regime="decode-final", config="auto", round=rd, images_per_second=auto,
                             sets=[]))
            runs.append(dict(common, regime="decode-final", config="best fixed", round=rd,
                             images_per_second=best, sets=["loader.io_depth=16"]))
        out = report("bench_tune.py", runs)
        self.assertIn("per round, auto / best fixed: 1.100 0.900 1.000  (median 1.000; auto ahead in 2 of 3)", out)
        self.assertIn("measured 1.000  met", out)


class Peers(unittest.TestCase):
    def test_a_peer_that_delivered_nothing_has_no_ratio(self):
        runs = [{"system": s, "threads": 1, "round": 0, "images": 0, "failed": 1, "seconds": 0.01,
                 "images_per_second": 0} for s in ("ringfeed", "hand", "pil_pool")]
        out = report("bench_peers.py", runs, command=["report"])
        self.assertIn("PIL thread pool 1 worker   same K: n/a   ringfeed K=1: n/a", out)

    def test_inputs_are_the_ones_ringfeed_takes(self):
        with tempfile.TemporaryDirectory() as d:
            for name in ("a.jpg", ".h.jpg", ".hidden/x.jpg", "sub/b.jpg"):
                os.makedirs(os.path.dirname(os.path.join(d, name)), exist_ok=True)
                open(os.path.join(d, name), "w").close()
            os.symlink("..", os.path.join(d, "sub", "up"))  # a loop: walked once
            os.symlink("../a.jpg", os.path.join(d, "sub", "l.jpg"))
            os.symlink("nowhere", os.path.join(d, "dangling"))  # an input that will fail, not a skip
            os.symlink("sub", os.path.join(d, "twin"))  # not an ancestor: walked again under its name
            self.assertEqual(list_files([d]), [os.path.join(d, n) for n in
                                               ("a.jpg", "dangling", "sub/b.jpg", "sub/l.jpg", "twin/b.jpg",
                                                "twin/l.jpg")])
            lst = os.path.join(d, "list.txt")
            with open(lst, "w") as f:
                f.write("# photos\r\n\r\n/x/a.jpg\r\n#/x/b.jpg\n /x/c.jpg\n")
            self.assertEqual(list_files(["@" + lst]), ["/x/a.jpg", " /x/c.jpg"])


if __name__ == "__main__":
    unittest.main()
