#!/usr/bin/python3
"""Python peers for ringfeed-bench (one JSON line per measurement on stdout), and the report.

  bench_peers.py pool --workers N [--repeat R] [--limit N] [--round-base N] PATH...
  bench_peers.py dataloader --workers N [--batch 32] [--repeat R] [--limit N] [--round-base N] PATH...
  bench_peers.py python --workers N [--batch 32] [--repeat R] [--limit N] [--round-base N] PATH...
  bench_peers.py report RUNS.jsonl [--json FILE] [--plot-data FILE]

pool:       the seed recipe: ThreadPoolExecutor(max_workers=N) mapping read -> PIL decode ->
            resize (shorter side 224, bilinear) + center crop 224 -> float32 CHW, ImageNet
            mean/std on the 0..255 scale.
dataloader: torch.utils.data.DataLoader over a map-style data set: PIL decode, Resize(224) +
            CenterCrop(224) + ToTensor + Normalize, batch 32, num_workers N.
python:     ringfeed's Python module (PYTHONPATH=<build>/python) with decoder.threads = N and the
            same output (nchw_f32 224x224 cover, ImageNet mean/std, batch 32), each batch taken
            as a torch tensor without a copy; the same consuming loop as the DataLoader's.
report:     reads the JSON lines of ringfeed-bench, these peers and bench.sh's context lines,
            prints medians per system and thread count, ratios and the targets; --json writes
            all of it (raw runs included), --plot-data the table that bench_plot.gp draws.
PATH is an image, a directory (walked recursively, sorted) or @LIST. Every file is read once
before timing. Run it with Debian's /usr/bin/python3 (python3-pil, -numpy, -torch, -torchvision).
"""
import argparse
import io
import json
import os
import resource
import stat
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor


SIZE = 224
MEAN_255 = [123.675, 116.28, 103.53]
STD_255 = [58.395, 57.12, 57.375]
NAMES = {"ringfeed": "ringfeed", "ringfeed_py": "ringfeed Python", "hand": "hand loop",
         "pil_pool": "PIL thread pool", "dataloader": "DataLoader"}
ORDER = list(NAMES)


def walk(path, ancestors):
    """A directory as ringfeed walks it: entries in byte order, hidden names skipped, links followed
    unless they lead back to a directory on the current path, every non-directory kept."""
    try:
        names = sorted(os.listdir(os.fsencode(path)))
    except OSError as e:  # ringfeed fails the whole input too
        sys.exit(f"bench_peers.py: {os.fsdecode(path)}: cannot read directory: {e.strerror}")
    found = []
    for name in names:
        if name.startswith(b"."):
            continue
        entry = os.path.join(os.fsencode(path), name)
        try:
            st = os.stat(entry)
        except OSError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            if (st.st_dev, st.st_ino) in ancestors:
                continue
            if len(ancestors) == 64:  # ringfeed refuses a tree deeper than that
                sys.exit(f"bench_peers.py: {os.fsdecode(entry)}: directory tree deeper than 64 levels")
            found += walk(entry, ancestors | {(st.st_dev, st.st_ino)})
        else:
            found.append(os.fsdecode(entry))
    return found


def list_files(inputs):
    """The inputs as ringfeed takes them: list lines that are not empty or # comments, directories
    walked as walk() does, anything else as it is."""
    files = []
    for item in inputs:
        if item.startswith("@"):
            with open(item[1:]) as f:
                lines = (line.rstrip("\r\n") for line in f)
                files.extend(line for line in lines if line and not line.startswith("#"))
        elif os.path.isdir(item):
            st = os.stat(item)
            files.extend(walk(item, {(st.st_dev, st.st_ino)}))
        else:
            files.append(item)
    return files


def warm(files):
    """Puts the regular files in the page cache; the others are for the runs to fail."""
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not hold the open
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                while os.read(fd, 1 << 20):
                    pass
        finally:
            os.close(fd)


def cpu_seconds():
    """User + system time of this process and its reaped children (DataLoader workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def seed_load(path, mean, std):
    """The seed recipe for one file: bytes -> normalised float32 CHW array; None when it fails."""
    import numpy as np
    from PIL import Image

    try:
        with open(path, "rb") as f:
            data = f.read()
        img = Image.open(io.BytesIO(data)).convert("RGB")
    except Exception:  # any file PIL cannot read fails alone, as in ringfeed
        return None
    w, h = img.size
    # Shorter side to SIZE, the longer one truncated as torchvision's Resize(SIZE) does.
    nw, nh = (SIZE, int(SIZE * h / w)) if w <= h else (int(SIZE * w / h), SIZE)
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - SIZE) // 2, (nh - SIZE) // 2
    img = img.crop((left, top, left + SIZE, top + SIZE))
    x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
    return (x - mean) / std


def run_pool(files, workers):
    import numpy as np  # the peers' imports, here so that a report needs neither numpy nor PIL

    mean = np.array(MEAN_255, dtype=np.float32).reshape(3, 1, 1)
    std = np.array(STD_255, dtype=np.float32).reshape(3, 1, 1)
    t0 = time.perf_counter()
    n = 0
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for x in ex.map(seed_load, files, [mean] * len(files), [std] * len(files)):
            n += x is not None
    return n, time.perf_counter() - t0, None


def make_loader(files, workers, batch):
    import torch
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose([
        transforms.Resize(SIZE),
        transforms.CenterCrop(SIZE),
        transforms.ToTensor(),
        transforms.Normalize(mean=[m / 255 for m in MEAN_255], std=[s / 255 for s in STD_255]),
    ])

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            try:
                with open(files[i], "rb") as f:
                    img = Image.open(f).convert("RGB")
            except Exception:  # any file PIL cannot read fails alone, as in ringfeed
                return None  # counted as failed: left out of its batch
            return tf(img)

    return torch.utils.data.DataLoader(Files(), batch_size=batch, shuffle=False, num_workers=workers,
                                       collate_fn=collate_decoded)


def collate_decoded(items):
    """The DataLoader's batch of the images that decoded (an empty one when none did)."""
    import torch
    from torch.utils.data import default_collate

    good = [x for x in items if x is not None]
    return default_collate(good) if good else torch.empty(0, 3, SIZE, SIZE)


def consume(batches, t0):
    """The Python loop both loaders feed: torch tensors of a batch each."""
    first = None
    n = 0
    for b in batches:
        if first is None:
            first = time.perf_counter() - t0
        n += b.shape[0]
    return n, time.perf_counter() - t0, first


def run_dataloader(files, workers, batch):
    loader = make_loader(files, workers, batch)
    return consume(loader, time.perf_counter())


def run_ringfeed_py(files, workers, batch):
    import torch
    import ringfeed

    pipe = ringfeed.Pipeline(files, decoder_threads=workers, batch_size=batch, output_layout="nchw_f32",
                             output_mean=MEAN_255, output_std=STD_255)
    with pipe:
        t0 = time.perf_counter()  # before iter() starts the pipeline, as the others time their start
        batches = iter(pipe)
        return consume((torch.from_numpy(b.array) for b in batches), t0)


def measure(args):
    files = list_files(args.paths)
    if args.limit:
        files = files[:args.limit]
    if not files:
        sys.exit("bench_peers.py: no input files")
    if args.system != "pool":
        __import__("torch")  # its import takes seconds: not part of the timing
    warm(files)
    name = {"pool": "pil_pool", "dataloader": "dataloader", "python": "ringfeed_py"}[args.system]
    for r in range(args.repeat):
        c0 = cpu_seconds()
        if args.system == "pool":
            n, secs, first = run_pool(files, args.workers)
        elif args.system == "python":
            n, secs, first = run_ringfeed_py(files, args.workers, args.batch)
        else:
            n, secs, first = run_dataloader(files, args.workers, args.batch)
        rec = {"system": name, "threads": args.workers, "round": args.round_base + r, "images": n,
               "failed": len(files) - n, "seconds": secs, "images_per_second": n / secs if secs > 0 else 0,
               "cpu_seconds": cpu_seconds() - c0}
        if first is not None:
            rec["first_batch_in_hand_seconds"] = first
        print(json.dumps(rec), flush=True)


# ---- report ------------------------------------------------------------------------------------


def read_runs(path):
    runs, meta = [], {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if "meta" in rec:
                meta[rec["meta"]] = rec["value"]
            else:
                runs.append(rec)
    return runs, meta


def summarize(runs):
    """One row per (system, threads): median, min, max images/s over the rounds."""
    groups = {}
    for r in runs:
        groups.setdefault((r["system"], r["threads"]), []).append(r)
    rows = []
    for (system, threads), rs in sorted(groups.items(), key=lambda kv: (ORDER.index(kv[0][0]), kv[0][1])):
        ips = [r["images_per_second"] for r in rs]
        row = {"system": system, "threads": threads, "runs": len(rs), "images": rs[0]["images"],
               "failed": max(r["failed"] for r in rs), "median_images_per_second": statistics.median(ips),
               "min_images_per_second": min(ips), "max_images_per_second": max(ips)}
        for key in ("first_batch_seconds", "first_batch_in_hand_seconds", "decoder_busy_fraction", "loader_busy_fraction",
                    "consumer_starved_fraction"):
            vals = [r[key] for r in rs if key in r]
            if vals:
                row["median_" + key] = statistics.median(vals)
        cpu = [r["cpu_seconds"] / r["images"] for r in rs if "cpu_seconds" in r and r["images"]]
        if cpu:
            row["median_cpu_ms_per_image"] = statistics.median(cpu) * 1e3
        rows.append(row)
    return rows


def ratios(rows, system="ringfeed"):
    """system's median over each other's: at the same thread count, and at system's largest."""
    rf = {r["threads"]: r["median_images_per_second"] for r in rows if r["system"] == system}
    if not rf:
        return []
    top = max(rf)
    out = []
    for r in rows:
        if r["system"] in ("ringfeed", "ringfeed_py"):
            continue
        peer = r["median_images_per_second"]
        rec = {"peer": r["system"], "threads": r["threads"],
               "vs_max": {"ringfeed_threads": top, "ratio": rf[top] / peer if peer else None}}
        if r["threads"] in rf:
            rec["vs_same"] = {"ringfeed_threads": r["threads"], "ratio": rf[r["threads"]] / peer if peer else None}
        out.append(rec)
    return out


def targets(rows):
    def med(system, threads, key="median_images_per_second"):
        for r in rows:
            if r["system"] == system and r["threads"] == threads:
                return r.get(key)
        return None

    out = []

    def check(name, value, goal, below=False):
        if value is None:
            return
        met = value < goal if below else value >= goal
        out.append({"target": name, "value": value, "goal": goal, "met": met})

    rf_threads = sorted(r["threads"] for r in rows if r["system"] == "ringfeed")
    if rf_threads and med("dataloader", 2):
        check(f"ringfeed (K={rf_threads[-1]}) / DataLoader num_workers=2 >= 3.0",
              med("ringfeed", rf_threads[-1]) / med("dataloader", 2), 3.0)
    for k in rf_threads:
        if med("hand", k):
            check(f"ringfeed / hand loop, K={k} >= 0.9", med("ringfeed", k) / med("hand", k), 0.9)
    if med("ringfeed", 1) and med("ringfeed", 2):
        check("ringfeed decoder.threads 1 -> 2 scaling >= 1.8", med("ringfeed", 2) / med("ringfeed", 1), 1.8)
    for k in rf_threads:
        fb = med("ringfeed", k, "median_first_batch_seconds")
        if fb is not None:
            check(f"ringfeed time to first batch (rf_stats), K={k} < 50 ms", fb * 1e3, 50.0, below=True)
    return out


def label(system, threads):
    if system == "dataloader":
        return f"DataLoader nw={threads}"
    unit = "worker" if system == "pil_pool" else "thread"
    return f"{NAMES[system]} {threads} {unit}{'s' if threads != 1 else ''}"


def times(ratio):
    """A ratio for the report; n/a where the peer delivered nothing."""
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def print_ratios(title, rat, system):
    if not rat:
        return
    print()
    print(title)
    for x in rat:
        same = x.get("vs_same")
        line = f"  {label(x['peer'], x['threads']):<26} "
        line += f"same K: {times(same['ratio'])}" if same else f"{'':<15}"
        line += f"   {system} K={x['vs_max']['ringfeed_threads']}: {times(x['vs_max']['ratio'])}"
        print(line)


def print_report(meta, rows, rat, rat_py, tgt):
    print(f"dataset {meta.get('dataset', '?')}: {meta.get('images', '?')} images, median of "
          f"{meta.get('repeat', '?')} interleaved rounds; ringfeed API {meta.get('api', '?')}"
          f"{'; --set ' + meta['config'] if meta.get('config') else ''}")
    print(f"machine: {meta.get('nproc', '?')} CPUs, {meta.get('cpu', '?')}, {meta.get('kernel', '?')}")
    loads = [f"{k[len('loadavg_'):]} {v}" for k, v in meta.items() if k.startswith("loadavg_")]
    print(f"load average (1/5/15 min): {'; '.join(loads)}")
    busy = [f"round {k[len('busy_before_round_'):]}: {v}" for k, v in meta.items() if k.startswith("busy_before_")]
    if busy:
        print(f"CPU busy in the second before each round (other work): {'; '.join(busy)}")
    if meta.get("busiest"):
        print(f"busiest processes at start: {meta['busiest']}")
    if meta.get("python"):
        print(f"peers: {meta['python']}")
    print()
    print(f"{'system':<26} {'images/s':>9} {'min':>8} {'max':>8} {'runs':>4} {'failed':>6} "
          f"{'CPU ms/img':>10} {'1st batch':>9} {'in hand':>9} {'dec busy':>8}")

    def cell(row, key, width, fmt):
        v = row.get(key)
        return f"{'' if v is None else fmt(v):>{width}}"

    for r in rows:
        print(f"{label(r['system'], r['threads']):<26} {r['median_images_per_second']:>9.1f} "
              f"{r['min_images_per_second']:>8.1f} {r['max_images_per_second']:>8.1f} {r['runs']:>4} "
              f"{r['failed']:>6} {cell(r, 'median_cpu_ms_per_image', 10, lambda v: f'{v:.2f}')} "
              f"{cell(r, 'median_first_batch_seconds', 9, lambda v: f'{v * 1e3:.1f} ms')} "
              f"{cell(r, 'median_first_batch_in_hand_seconds', 9, lambda v: f'{v * 1e3:.1f} ms')} "
              f"{cell(r, 'median_decoder_busy_fraction', 8, lambda v: f'{v * 100:.0f}%')}")
    print("(medians; CPU ms/img: user + system CPU of the process and its workers per image; 1st batch:\n"
          " rf_stats.first_batch_seconds; in hand: start call to first batch in the consumer's hand;\n"
          " dec busy: ringfeed decoder threads' busy share of their time (parked ones left out), from rf_stats)")
    print_ratios("ringfeed / peer (ratio of medians)", rat, "ringfeed")
    print_ratios("ringfeed from Python (the same consuming loop as the DataLoader's) / peer", rat_py, "Python")
    print()
    print("targets")
    for t in tgt:
        value = f"{t['value']:.1f} ms" if t["target"].endswith("ms") else f"{t['value']:.3f}x"
        print(f"  {t['target']:<58} measured {value:>9}  {'met' if t['met'] else 'NOT met'}")


def write_plot_data(path, rows):
    with open(path, "w") as f:
        f.write("# label system_index median min max\n")
        for r in rows:
            f.write(f"\"{label(r['system'], r['threads'])}\" {ORDER.index(r['system'])} "
                    f"{r['median_images_per_second']:.3f} {r['min_images_per_second']:.3f} "
                    f"{r['max_images_per_second']:.3f}\n")


def report(args):
    runs, meta = read_runs(args.runs)
    rows = summarize(runs)
    rat, rat_py, tgt = ratios(rows), ratios(rows, "ringfeed_py"), targets(rows)
    print_report(meta, rows, rat, rat_py, tgt)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "summary": rows, "ratios": rat, "python_ratios": rat_py, "targets": tgt,
                       "runs": runs}, f, indent=2)
        print(f"json: {args.json}")
    if args.plot_data:
        write_plot_data(args.plot_data, rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="system", required=True)
    for name in ("pool", "dataloader", "python"):
        p = sub.add_parser(name)
        p.add_argument("--workers", type=int, required=True)
        p.add_argument("--batch", type=int, default=32)
        p.add_argument("--repeat", type=int, default=1)
        p.add_argument("--limit", type=int, default=0)
        p.add_argument("--round-base", type=int, default=0)
        p.add_argument("paths", nargs="+")
        p.set_defaults(func=measure)
    p = sub.add_parser("report")
    p.add_argument("runs")
    p.add_argument("--json")
    p.add_argument("--plot-data")
    p.set_defaults(func=report)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
