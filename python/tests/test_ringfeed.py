"""Tests of the ringfeed Python module (run by ctest with Debian's /usr/bin/python3).

PYTHONPATH points at the build tree's python/ folder; RF_SAMPLES_PATH at ringfeed-samples.
"""
import os
import pathlib
import signal
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import zlib

import numpy as np

import ringfeed

RF_EITEM = -12
RF_EDECODE = -9
RF_EIO = -3
RF_ESTATE = -14


def write_ppm(path, width, height, rgb):
    with open(path, "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (width, height) + bytes(rgb) * (width * height))


def write_png(path, width, height, row_value=lambda y: y % 256):
    """An RGB PNG written with zlib alone; big ones compress to almost nothing."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes([row_value(y)]) * (width * 3) for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 6)) +
                chunk(b"IEND", b""))


_tmp = None


def setUpModule():
    global _tmp
    _tmp = tempfile.TemporaryDirectory()
    photos = pathlib.Path(_tmp.name) / "photos"
    subprocess.run([os.environ["RF_SAMPLES_PATH"], str(photos), "60"], check=True, stdout=subprocess.DEVNULL)


def tearDownModule():
    _tmp.cleanup()


class Data(unittest.TestCase):
    """Sample JPEGs in a temporary folder shared by the module."""

    @classmethod
    def setUpClass(cls):
        cls.dir = pathlib.Path(_tmp.name)
        cls.photos = cls.dir / "photos"
        cls.photo_files = sorted(str(p) for p in cls.photos.iterdir())

    def delivered(self, pipe):
        """(indices of images, errors) over a whole run; releases every batch."""
        indices, errors = [], []
        for batch in pipe:
            indices += batch.indices
            errors += batch.errors
        return indices, errors


class Pixels(Data):
    def test_nhwc_u8_values_are_the_image(self):
        colours = [(200, 10, 30), (0, 128, 255), (7, 77, 177)]
        files = []
        for i, rgb in enumerate(colours):
            files.append(str(self.dir / f"solid{i}.ppm"))
            write_ppm(files[-1], 50, 40, rgb)
        with ringfeed.Pipeline(files, output_width=16, output_height=8, batch_size=3) as pipe:
            batch = pipe.next()
            self.assertEqual(batch.array.shape, (3, 8, 16, 3))
            self.assertEqual(batch.array.dtype, np.uint8)
            for i, rgb in enumerate(colours):
                self.assertTrue((batch.array[i] == np.array(rgb, dtype=np.uint8)).all())
            self.assertEqual(batch.paths, files)
            self.assertEqual(batch.indices, [0, 1, 2])

    def test_nchw_f32_is_normalised(self):
        path = str(self.dir / "grey.ppm")
        write_ppm(path, 30, 30, (100, 150, 200))
        mean, std = (100.0, 100.0, 100.0), (2.0, 4.0, 5.0)
        with ringfeed.Pipeline(path, output_layout="nchw_f32", output_width=4, output_height=6,
                               output_mean=mean, output_std=std) as pipe:
            a = pipe.next().array
            self.assertEqual(a.shape, (1, 3, 6, 4))
            self.assertEqual(a.dtype, np.float32)
            for c, want in enumerate([0.0, 12.5, 20.0]):
                self.assertTrue(np.allclose(a[0, c], want), (c, a[0, c]))

    def test_array_is_the_batch_memory_not_a_copy(self):
        with ringfeed.Pipeline(self.photo_files[:8], batch_size=8) as pipe:
            batch = pipe.next()
            a = batch.array
            view = np.frombuffer(memoryview(batch._raw), dtype=np.uint8)
            self.assertTrue(np.shares_memory(a, view))
            a[0, 0, 0, 0] = 17
            a[0, 0, 0, 0] ^= 0xFF
            self.assertEqual(view[0], 17 ^ 0xFF)
            del a, view


class Accounting(Data):
    def bad_inputs(self):
        empty = self.dir / "empty.jpg"
        empty.write_bytes(b"")
        text = self.dir / "text.png"
        text.write_text("not an image")
        truncated = self.dir / "truncated.jpg"
        truncated.write_bytes(pathlib.Path(self.photo_files[0]).read_bytes()[:300])
        return [str(empty), str(text), str(truncated), str(self.dir / "missing.jpg")]

    def test_every_item_is_an_image_or_an_error(self):
        bad = self.bad_inputs()
        inputs = self.photo_files[:10] + bad + self.photo_files[10:20]
        with ringfeed.Pipeline(inputs, batch_size=7, decoder_threads=2) as pipe:
            indices, errors = self.delivered(pipe)
            stats = pipe.stats()
        self.assertEqual(sorted(indices + [e.index for e in errors]), list(range(len(inputs))))
        self.assertEqual(sorted(e.path for e in errors), sorted(bad))
        for e in errors:
            self.assertIsInstance(e, ringfeed.ItemError)
            self.assertTrue(e.reason)
            self.assertLess(e.code, 0)
        self.assertEqual([e.code for e in errors if e.path.endswith("missing.jpg")], [RF_EIO])
        self.assertEqual((stats["ok"], stats["failed"], stats["total"]), (20, 4, 24))

    def test_on_error_fail_raises_with_the_path(self):
        bad = str(self.dir / "bad.jpg")
        pathlib.Path(bad).write_bytes(b"\xff\xd8\xff\xe0garbage")
        with ringfeed.Pipeline(self.photo_files[:3] + [bad], pipeline_on_error="fail") as pipe:
            with self.assertRaises(ringfeed.Error) as cm:
                self.delivered(pipe)
        self.assertEqual(cm.exception.code, RF_EITEM)
        self.assertEqual(cm.exception.name, "RF_EITEM")
        self.assertIn(bad, str(cm.exception))

    def test_inputs_as_dir_pathlib_and_list_file(self):
        listing = self.dir / "list.txt"
        listing.write_text("\n".join(self.photo_files[:5]) + "\n")
        with ringfeed.Pipeline([self.photos, "@" + str(listing)], batch_size=16) as pipe:
            self.assertEqual(pipe.item_count, 65)
            indices, errors = self.delivered(pipe)
        self.assertEqual(sorted(indices), list(range(65)))
        self.assertEqual(errors, [])

    def test_two_threads_share_one_pipeline(self):
        seen = [[], []]

        def consume(out):
            for batch in pipe:
                out += batch.indices

        with ringfeed.Pipeline(self.photo_files, batch_size=4, batch_ordered=False) as pipe:
            threads = [threading.Thread(target=consume, args=(seen[i],)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        self.assertEqual(sorted(seen[0] + seen[1]), list(range(60)))

    def test_adds_from_several_threads_are_one_at_a_time(self):
        """An add runs without the GIL; a second one at the same time raises instead of racing it."""
        pipe = ringfeed.Pipeline([self.photos], batch_size=4)
        done, refused = [], []

        def add():
            for _ in range(5):
                try:
                    pipe._p.add(str(self.photos))
                    done.append(1)
                except RuntimeError:
                    refused.append(1)

        threads = [threading.Thread(target=add) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(done) + len(refused), 40)
        self.assertEqual(pipe.item_count, 60 * (1 + len(done)))
        pipe.close()

    def test_save_state_and_resume_deliver_the_epoch_once(self):
        settings = dict(batch_size=5, source_shuffle=True, source_seed=9)
        first = []
        with ringfeed.Pipeline(self.photo_files, **settings) as pipe:
            for _ in range(3):
                first += pipe.next().indices
            state = pipe.save_state()
        with ringfeed.Pipeline(self.photo_files, **settings) as pipe:
            pipe.resume(state)
            rest, _ = self.delivered(pipe)
        self.assertEqual(len(first), 15)
        self.assertEqual(sorted(first + rest), list(range(60)))


class Config(Data):
    def test_unknown_key_is_a_config_error(self):
        with self.assertRaises(ringfeed.ConfigError) as cm:
            ringfeed.Pipeline(self.photo_files, decoder_speed=3)
        self.assertIn("decoder.speed", str(cm.exception))
        self.assertIsInstance(cm.exception, ValueError)

    def test_bad_value_names_the_key(self):
        with self.assertRaises(ringfeed.ConfigError) as cm:
            ringfeed.Pipeline(self.photo_files, options={"batch.size": 0})
        self.assertIn("batch.size", str(cm.exception))

    def test_ini_file_then_overrides(self):
        ini = self.dir / "c.ini"
        ini.write_text("[output]\nwidth = 32\nheight = 24\n[batch]\nsize = 4\n")
        with ringfeed.Pipeline(self.photo_files[:4], config=ini, output_height=8) as pipe:
            self.assertEqual(pipe.next().array.shape, (4, 8, 32, 3))
        ini.write_text("[output]\nwidht = 32\n")
        with self.assertRaises(ringfeed.ConfigError) as cm:
            ringfeed.Pipeline(self.photo_files, config=ini)
        self.assertIn("c.ini", str(cm.exception))
        self.assertIn(":2", str(cm.exception))

    def test_keyword_without_a_section(self):
        with self.assertRaises(TypeError):
            ringfeed.Pipeline(self.photo_files, threads=2)


class Lifetime(Data):
    def test_release_refuses_while_an_array_is_alive(self):
        with ringfeed.Pipeline(self.photo_files[:8], batch_size=4) as pipe:
            batch = pipe.next()
            kept = batch.array[1:3]
            with self.assertRaises(BufferError):
                batch.release()
            self.assertFalse(batch.released)
            del kept
            batch.release()
            self.assertTrue(batch.released)
            with self.assertRaises(ValueError):
                batch.array
            batch.release()  # twice is harmless

    def test_holding_the_whole_pool_raises_instead_of_hanging(self):
        with ringfeed.Pipeline(self.photo_files, batch_size=2) as pipe:
            pool = None
            held = []
            with self.assertRaises(ringfeed.Error) as cm:
                for batch in pipe:
                    held.append(batch.array)
                    pool = pipe.stats()["batch_pool"]
            self.assertEqual(cm.exception.code, RF_ESTATE)
            self.assertEqual(len(held), pool)

    def test_a_window_of_pool_minus_one_batches_keeps_flowing(self):
        with ringfeed.Pipeline(self.photo_files, batch_size=2, decoder_threads=2) as pipe:
            pipe.start()
            window, count = [], 0
            keep = pipe.stats()["batch_pool"] - 1
            for batch in pipe:
                window.append(batch)
                count += len(batch)
                if len(window) == keep:
                    window.pop(0).release()
        self.assertEqual(count, 60)

    def test_arrays_outlive_close_and_the_pipeline_object(self):
        pipe = ringfeed.Pipeline(self.photo_files[:4], batch_size=4)
        a = pipe.next().array
        expected = a.copy()
        pipe.close()
        self.assertTrue(pipe.closed)
        with self.assertRaises(ringfeed.Error):
            pipe.next()
        del pipe
        self.assertTrue((a == expected).all())  # still the batch memory: it was not freed

    def test_cancel_from_another_thread(self):
        with ringfeed.Pipeline(self.photo_files, batch_size=2, decoder_threads=1) as pipe:
            pipe.next()
            t = threading.Thread(target=pipe.cancel)
            t.start()
            t.join()
            with self.assertRaises(ringfeed.Canceled):
                for _ in pipe:
                    pass


class Waiting(Data):
    """The GIL is released while next() waits, and Ctrl-C interrupts the wait."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Sixteen 4000x4000 PNGs on one decoder thread: the first batch takes about two seconds.
        cls.big = str(cls.dir / "big.png")
        write_png(cls.big, 4000, 4000)

    def slow_pipeline(self):
        return ringfeed.Pipeline([self.big] * 16, batch_size=16, decoder_threads=1)

    def test_other_threads_run_while_next_waits(self):
        with self.slow_pipeline() as pipe:
            pipe.start()
            got = []
            t = threading.Thread(target=lambda: got.append(pipe.next()))
            spins = 0
            t0 = time.monotonic()
            t.start()
            while t.is_alive():
                spins += 1
            waited = time.monotonic() - t0
            self.assertEqual(len(got[0]), 16)
        self.assertGreater(waited, 0.3)
        # Holding the GIL through the wait would leave this loop a handful of turns.
        self.assertGreater(spins, 100000)

    def test_ctrl_c_interrupts_a_wait(self):
        with self.slow_pipeline() as pipe:
            pipe.start()
            timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
            t0 = time.monotonic()
            timer.start()
            with self.assertRaises(KeyboardInterrupt):
                pipe.next()
            interrupted = time.monotonic() - t0
            timer.join()
        # The batch would take about two seconds; a signal check every 100 ms ends the wait early.
        self.assertLess(interrupted, 1.0)


class Stats(Data):
    def test_stats_and_bottleneck(self):
        with ringfeed.Pipeline(self.photo_files, batch_size=8, decoder_threads=2) as pipe:
            n = sum(len(b) for b in pipe)
            s = pipe.stats()
        self.assertEqual(n, 60)
        self.assertEqual(s["ok"], 60)
        self.assertEqual(s["batches"], 8)
        self.assertGreater(s["bytes_read"], 0)
        self.assertEqual(set(s["stages"]), {"loader", "decoder", "infer"})
        self.assertEqual(s["stages"]["decoder"]["threads"], 2)
        self.assertEqual(s["stages"]["decoder"]["items"], 60)
        self.assertIn(s["bottleneck"][0], {"loader", "decoder", "infer"})
        self.assertTrue(s["bottleneck"][1])
        self.assertGreaterEqual(s["starved_fraction"], 0)
        self.assertLessEqual(s["starved_fraction"], 1)
        self.assertRegex(ringfeed.version(), r"^\d+\.\d+\.\d+$")

    def test_stats_before_start_and_after_a_refused_one(self):
        pipe = ringfeed.Pipeline(self.photo_files, batch_size=4)
        for _ in range(2):
            s = pipe.stats()  # it crashed on the stages' names, not set before start
            self.assertEqual(s["total"], 60)
            self.assertEqual(s["items"], 0)
            self.assertEqual(set(s["stages"]), {"loader", "decoder", "infer"})
            self.assertEqual(set(s["queues"]), {"free_items", "decode", "ready"})
            pipe.cancel()
            with self.assertRaises(ringfeed.Canceled):
                pipe.start()
        pipe.close()
        self.assertEqual(pipe.item_count, 60)  # still known once the C pipeline is freed


class Messages(Data):
    def test_an_error_says_what_failed_now_not_before(self):
        pipe = ringfeed.Pipeline(self.photo_files[:4], batch_size=4)
        with self.assertRaises(ringfeed.Error) as cm:
            pipe._p.add("@" + str(self.dir / "no-such-list"))
        self.assertIn("no-such-list", str(cm.exception))
        pipe.start()
        pipe.cancel()
        with self.assertRaises(ringfeed.Canceled) as cm:
            pipe.next()
        self.assertNotIn("no-such-list", str(cm.exception))
        with self.assertRaises(ringfeed.Error) as cm:
            pipe._p.add(self.photo_files[0])  # after start
        self.assertEqual(cm.exception.code, RF_ESTATE)
        self.assertNotIn("no-such-list", str(cm.exception))
        pipe.close()

    def test_paths_that_are_not_utf8_in_messages_and_config(self):
        d = os.fsencode(self.dir / "bytes")
        os.makedirs(d, exist_ok=True)
        bad = os.path.join(d, b"\xffbad.jpg")
        with open(bad, "wb") as f:
            f.write(b"not an image")
        with self.assertRaises(ringfeed.Error) as cm:  # a UnicodeDecodeError before
            with ringfeed.Pipeline([self.photo_files[0], bad], batch_size=2, pipeline_on_error="fail") as pipe:
                self.delivered(pipe)
        self.assertEqual(cm.exception.code, RF_EITEM)
        self.assertIn(os.fsdecode(bad), str(cm.exception))
        ini = os.path.join(d, b"conf\xff.ini")
        with open(ini, "w") as f:
            f.write("[batch]\nsize = 3\n")
        for config in (ini, pathlib.Path(os.fsdecode(ini))):  # bytes, and a PathLike of such a name
            with ringfeed.Pipeline(self.photo_files[:3], config) as pipe:
                self.assertEqual(pipe.batch_size, 3)

    def test_an_add_whose_path_lets_another_add_in(self):
        """Converting a PathLike runs Python code: another thread's add may start meanwhile."""
        lst = self.dir / "many.lst"
        lst.write_text((self.photo_files[0] + "\n") * 400000)
        pipe = ringfeed.Pipeline([], batch_size=4)
        inside = threading.Event()

        class Slow:
            def __fspath__(self):
                inside.set()
                time.sleep(0.01)  # the other add starts now, and takes longer than this
                return "@" + str(lst)

        outcomes = []

        def add(path):
            try:
                pipe._p.add(path)
                outcomes.append("added")
            except RuntimeError:
                outcomes.append("refused")

        other = threading.Thread(target=lambda: (inside.wait(10), add("@" + str(lst))))
        other.start()
        add(Slow())
        other.join(60)
        self.assertEqual(len(outcomes), 2)
        # Both adding at once corrupted the path list (a crash in realloc, or a wrong count).
        self.assertEqual(pipe.item_count, 400000 * outcomes.count("added"))
        pipe.close()


class Threads(Data):
    def test_threads_that_hold_the_pool_between_them_keep_flowing(self):
        """The pool is all held, but by threads that will give their batches back: no error."""
        errors, images = [], []
        with ringfeed.Pipeline(self.photo_files[:40], batch_size=1, decoder_threads=1,
                               batch_ordered=False) as pipe:
            pipe.start()
            pool = pipe.stats()["batch_pool"]

            def work():
                try:
                    while (b := pipe.next()) is not None:
                        images.append(len(b))
                        time.sleep(0.15)
                        b.release()
                except ringfeed.Error as e:
                    errors.append(str(e))

            threads = [threading.Thread(target=work) for _ in range(pool + 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(sum(images), 40)

    def test_batches_taken_by_one_thread_and_kept_by_another_still_raise(self):
        """A worker takes the whole pool and ends; the main thread keeps the batches and asks again."""
        with ringfeed.Pipeline(self.photo_files, batch_size=2, decoder_threads=1) as pipe:
            pipe.start()
            pool = pipe.stats()["batch_pool"]
            kept = []
            worker = threading.Thread(target=lambda: kept.extend(pipe.next() for _ in range(pool)))
            worker.start()
            worker.join(60)
            self.assertEqual(len(kept), pool)
            with self.assertRaises(ringfeed.Error) as cm:  # it waited for ever
                pipe.next()
            self.assertEqual(cm.exception.code, RF_ESTATE)

    def test_the_whole_pool_held_raises_with_an_idle_thread_around(self):
        """Another Python thread that never touches the pipeline does not turn the error into a hang."""
        stop = threading.Event()
        idle = threading.Thread(target=stop.wait, daemon=True)
        idle.start()
        try:
            with ringfeed.Pipeline(self.photo_files, batch_size=2, decoder_threads=1) as pipe:
                kept = []
                with self.assertRaises(ringfeed.Error) as cm:
                    while True:
                        kept.append(pipe.next())
                self.assertEqual(cm.exception.code, RF_ESTATE)
                self.assertEqual(len(kept), pipe.stats()["batch_pool"])
        finally:
            stop.set()

    def test_a_prefetch_thread_feeding_the_main_thread(self):
        """One thread only calls next() into a queue; the main thread works and releases."""
        import queue

        q, errors = queue.Queue(), []
        with ringfeed.Pipeline(self.photo_files[:40], batch_size=1, decoder_threads=1) as pipe:
            pipe.start()

            def prefetch():
                try:
                    while (b := pipe.next()) is not None:
                        q.put(b)
                except ringfeed.Error as e:
                    errors.append(str(e))
                q.put(None)

            t = threading.Thread(target=prefetch)
            t.start()
            n = 0
            while (b := q.get(timeout=60)) is not None:
                time.sleep(0.01)
                n += len(b)
                b.release()
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(n, 40)

    def test_the_end_of_the_data_with_the_whole_pool_kept_is_the_end(self):
        with ringfeed.Pipeline(self.photo_files, batch_size=2, decoder_threads=1) as pipe:
            pipe.start()
            pool = pipe.stats()["batch_pool"]
        with ringfeed.Pipeline(self.photo_files[:2 * pool], batch_size=2, decoder_threads=1) as pipe:
            kept = [pipe.next() for _ in range(pool)]
            self.assertTrue(all(len(b) == 2 for b in kept))
            self.assertIsNone(pipe.next())  # not "all batches of the pool are held"


if __name__ == "__main__":
    unittest.main()
