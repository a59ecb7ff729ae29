"""ringfeed: batches of decoded images for Python, from the ringfeed C library.

    import ringfeed

    with ringfeed.Pipeline("photos/", output_layout="nchw_f32", batch_size=64,
                           output_mean=(123.675, 116.28, 103.53),
                           output_std=(58.395, 57.12, 57.375)) as pipe:
        for batch in pipe:
            x = batch.array        # numpy (64, 3, 224, 224) float32 over the batch's own memory
            model(torch.from_numpy(x))
        print(pipe.stats()["starved_fraction"])

Settings are the config keys of docs/config.md: ``section_key=value`` keyword arguments
(``decoder_threads=2``, ``loader_io_depth=128``) or ``options={"decoder.threads": 2}``, applied
over an INI file given as ``config=``. Lists (``output_mean``) may be tuples, booleans are bools.

Zero copy, and safe: ``batch.array`` is a numpy view of the batch tensor. The batch goes back to
the pipeline's fixed pool when the Batch and every array viewing it are gone (or at
``batch.release()``, which raises BufferError while views are alive), so keep a copy
(``batch.array.copy()``) of anything you hold beyond the loop body: held batches stall the
pipeline, and asking for a batch while the whole pool is held raises ringfeed.Error once none has
been given back for 2 s (threads that work and release keep it waiting).

The GIL is released while the pipeline waits and works; Ctrl-C interrupts a wait.
"""

import collections
import os

import numpy as np

from ._ringfeed import Canceled, ConfigError, Error, version
from . import _ringfeed

__all__ = ["Pipeline", "Batch", "ItemError", "Error", "ConfigError", "Canceled", "version"]

ItemError = collections.namedtuple("ItemError", "index path code reason epoch")
ItemError.__doc__ = "An input that could not become an image: its index, path, RF_E* code and reason."


def _config_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _settings(options, keywords):
    pairs = [(key, _config_value(value)) for key, value in (options or {}).items()]
    for name, value in keywords.items():
        section, sep, key = name.partition("_")
        if not sep or not key:
            raise TypeError(f"unexpected keyword {name!r}: settings are section_key=value, e.g. decoder_threads=2")
        pairs.append((f"{section}.{key}", _config_value(value)))
    return pairs


class Batch:
    """One batch: ``array`` (numpy view), ``paths``, ``indices``, ``errors``, ``epoch``, ``sequence``."""

    __slots__ = ("_raw", "_shape", "_dtype", "_array")

    def __init__(self, raw, shape, dtype):
        self._raw = raw
        self._shape = shape
        self._dtype = dtype
        self._array = None

    @property
    def array(self):
        """The images as one numpy array, (n, h, w, c) uint8 or (n, c, h, w) float32, not copied."""
        if self._array is None:
            if self._raw.released:
                raise ValueError("the batch was released")
            self._array = np.frombuffer(self._raw, dtype=self._dtype).reshape((self._raw.count,) + self._shape)
        return self._array

    def __len__(self):
        return self._raw.count

    @property
    def paths(self):
        return self._raw.paths

    @property
    def indices(self):
        return self._raw.indices

    @property
    def errors(self):
        """Items that failed since the previous batch, as ItemError tuples."""
        return [ItemError(*e) for e in self._raw.errors]

    @property
    def epoch(self):
        return self._raw.epoch

    @property
    def sequence(self):
        return self._raw.sequence

    @property
    def released(self):
        return self._raw.released

    def release(self):
        """Gives the batch back now. BufferError while arrays other than ``self.array`` view it."""
        self._array = None
        self._raw.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False

    def __repr__(self):
        if self.released:
            return "<ringfeed.Batch released>"
        return f"<ringfeed.Batch {self.sequence}: {len(self)} images, {len(self._raw.errors)} errors>"


class Pipeline:
    """A running ringfeed pipeline over ``inputs`` (a path or a list of them: files, directories, @LIST).

    Iterate it for Batch objects. It starts at the first iteration (or ``start()``); ``close()``
    (or the end of a ``with`` block) stops the threads and frees the pipeline once every batch is
    given back.
    """

    def __init__(self, inputs, config=None, *, options=None, **settings):
        self._p = _ringfeed.Pipeline(_settings(options, settings), None if config is None else os.fspath(config))
        if isinstance(inputs, (str, bytes, os.PathLike)):
            inputs = [inputs]
        for item in inputs:
            self._p.add(item)
        layout, height, width, channels, self.batch_size = self._p.output
        if layout == "nchw_f32":
            self._shape, self._dtype = (channels, height, width), np.float32
        else:
            self._shape, self._dtype = (height, width, channels), np.uint8

    @property
    def item_count(self):
        """Inputs added (each becomes one image or one ItemError per epoch)."""
        return self._p.item_count

    @property
    def shape(self):
        """Shape of one image in ``batch.array``."""
        return self._shape

    @property
    def dtype(self):
        return np.dtype(self._dtype)

    def start(self):
        """Starts the stage threads; later calls do nothing."""
        self._p.start()

    def next(self):
        """The next Batch, or None after the last one (waits; Ctrl-C interrupts)."""
        self.start()
        raw = self._p.next()
        return None if raw is None else Batch(raw, self._shape, self._dtype)

    def __iter__(self):
        self.start()
        return self

    def __next__(self):
        batch = self.next()
        if batch is None:
            raise StopIteration
        return batch

    def cancel(self):
        """Stops the run; safe from any thread. A waiting next() raises ringfeed.Canceled."""
        self._p.cancel()

    def close(self):
        self._p.close()

    @property
    def closed(self):
        return self._p.closed

    def stats(self):
        """Counters of the run (rf_pipeline_stats) as a dict, with ``bottleneck`` (stage, advice)."""
        return self._p.stats()

    def save_state(self):
        """The position after the last batch handed out, as a string for ``resume``."""
        return self._p.save_state()

    def resume(self, state):
        """Continues from ``save_state``'s string; before the first batch."""
        self._p.resume(state)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
