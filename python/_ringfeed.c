/*
 * ringfeed._ringfeed: the CPython extension under the ringfeed package
 * (python/ringfeed/__init__.py builds the numpy arrays and the iterator on it).
 *
 * A C extension rather than ctypes or cffi, for three reasons:
 * - a batch is handed to Python through the buffer protocol, so numpy views
 *   the batch tensor without a copy, and the batch cannot go back to the pool
 *   while a view of it is alive (release() raises BufferError instead of
 *   leaving an array over memory the decoders are refilling);
 * - rf_config is used as the C struct it is, never mirrored field by field;
 * - the GIL is released around every call that can wait, and a wait for the
 *   next batch wakes every 100 ms to let Ctrl-C through.
 *
 * Lifetime: a Batch holds a reference to its Pipeline, and close() only frees
 * the C pipeline once no call is waiting in it and every Batch is given back;
 * until then it is canceled and refuses new calls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "ringfeed/ringfeed.h"

/* How long a wait for the next batch runs without a look at pending signals. */
#define SIGNAL_CHECK_MS 100
/* How long next() waits with the whole pool held and nothing given back before it raises. */
#define POOL_STALL_MS 2000

static PyObject *Error;       /* ringfeed.Error: every failure, with .code and .name */
static PyObject *ConfigError; /* RF_ECONFIG (also a ValueError) */
static PyObject *Canceled;    /* RF_ECANCELED */

typedef struct {
	PyObject_HEAD
	rf_pipeline *p; /* NULL once closed */
	rf_config cfg;
	bool started;
	bool close_requested;
	Py_ssize_t live_batches; /* Batch objects not given back yet */
	Py_ssize_t waiting;      /* calls in progress with the GIL released */
	bool adding;             /* an add runs without the GIL: no other add, start or resume meanwhile */
	size_t pool;             /* batches in the pool (known after start) */
	size_t items_at_close;   /* item_count, kept when the C pipeline is freed */
	uint64_t last_release_ns; /* when a batch was last given back (CLOCK_MONOTONIC) */
} PipelineObject;

typedef struct {
	PyObject_HEAD
	PipelineObject *owner; /* strong reference: a pipeline outlives its batches */
	rf_batch *b;           /* NULL once released */
	Py_ssize_t exports;    /* buffer views alive */
} BatchObject;

static PyTypeObject PipelineType;
static PyTypeObject BatchType;

/*
 * Raises the exception class for code with message (or rf_strerror's text).
 * Messages name paths, which need not be UTF-8: decoded as the file system's
 * (undecodable bytes kept as surrogates, as os.fsdecode does).
 */
static PyObject *raise_code(int code, const char *message)
{
	PyObject *type = code == RF_ECONFIG ? ConfigError : code == RF_ECANCELED ? Canceled : Error;
	PyObject *text = PyUnicode_DecodeFSDefault(message && *message ? message : rf_strerror(code));
	PyObject *exc = text ? PyObject_CallOneArg(type, text) : NULL;
	Py_XDECREF(text);
	if (!exc)
		return NULL;
	PyObject *num = PyLong_FromLong(code);
	PyObject *name = PyUnicode_FromString(rf_err_name(code));
	if (num && name && PyObject_SetAttrString(exc, "code", num) == 0 &&
	    PyObject_SetAttrString(exc, "name", name) == 0)
		PyErr_SetObject(type, exc);
	Py_XDECREF(num);
	Py_XDECREF(name);
	Py_DECREF(exc);
	return NULL;
}

/*
 * Raises code with rf_pipeline_error's message when the failing call wrote it
 * (written is true), else with rf_strerror's: the message stays from the last
 * failure that wrote one, which may be an earlier, unrelated call.
 */
static PyObject *raise_pipeline(PipelineObject *self, int code, bool written)
{
	return raise_code(code, written && self->p ? rf_pipeline_error(self->p) : NULL);
}

/* Frees the C pipeline once close() was asked for and nothing uses it. */
static void maybe_free(PipelineObject *self)
{
	if (!self->p || !self->close_requested || self->waiting > 0 || self->live_batches > 0)
		return;
	rf_pipeline *p = self->p;
	self->items_at_close = rf_pipeline_item_count(p);
	self->p = NULL;
	Py_BEGIN_ALLOW_THREADS
	rf_pipeline_close(p);
	Py_END_ALLOW_THREADS
}

/* 0, or -1 with an exception set when the pipeline cannot take calls. */
static int check_open(PipelineObject *self)
{
	if (self->p && !self->close_requested)
		return 0;
	raise_code(RF_ESTATE, "the pipeline is closed");
	return -1;
}

/* ---- Pipeline -------------------------------------------------------------------- */

/* O& converter: None, or a path (str, bytes, os.PathLike) as file-system bytes in *out. */
static int fs_path_or_none(PyObject *arg, void *out)
{
	if (arg == Py_None) {
		*(PyObject **)out = NULL;
		return 1;
	}
	return PyUnicode_FSConverter(arg, out);
}

/* Pipeline(settings, config=None): settings is a sequence of (key, value) strings. */
static int Pipeline_init(PipelineObject *self, PyObject *args, PyObject *kwargs)
{
	static char *kwlist[] = {"settings", "config", NULL};
	PyObject *settings = NULL, *config_path = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O&", kwlist, &settings, fs_path_or_none, &config_path))
		return -1;
	if (self->p) {
		Py_XDECREF(config_path);
		PyErr_SetString(PyExc_RuntimeError, "Pipeline.__init__ called twice");
		return -1;
	}
	char err[512] = "";
	rf_config_init(&self->cfg);
	int rc = config_path ? rf_config_load(&self->cfg, PyBytes_AS_STRING(config_path), err, sizeof(err)) : 0;
	Py_XDECREF(config_path);
	if (rc) {
		raise_code(rc, err);
		return -1;
	}
	PyObject *seq = PySequence_Fast(settings, "settings must be a sequence of (key, value) pairs");
	if (!seq)
		return -1;
	for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
		const char *key, *value;
		if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "ss;a setting is a (key, value) pair of str",
				      &key, &value)) {
			Py_DECREF(seq);
			return -1;
		}
		rc = rf_config_set(&self->cfg, key, value, err, sizeof(err));
		if (rc) {
			Py_DECREF(seq);
			raise_code(rc, err);
			return -1;
		}
	}
	Py_DECREF(seq);
	rc = rf_config_validate(&self->cfg, err, sizeof(err));
	if (rc == 0)
		rc = rf_pipeline_create(&self->p, &self->cfg);
	if (rc) {
		raise_code(rc, err);
		return -1;
	}
	return 0;
}

static void Pipeline_dealloc(PipelineObject *self)
{
	/* Batches hold a reference, so none is alive here. */
	if (self->p) {
		rf_pipeline *p = self->p;
		self->p = NULL;
		Py_BEGIN_ALLOW_THREADS
		rf_pipeline_close(p);
		Py_END_ALLOW_THREADS
	}
	Py_TYPE(self)->tp_free((PyObject *)self);
}

/* True, with RuntimeError set, while another thread's add runs (the C API allows one thread at a time). */
static bool busy_adding(PipelineObject *self)
{
	if (self->adding)
		PyErr_SetString(PyExc_RuntimeError, "another thread is adding inputs to this pipeline");
	return self->adding;
}

static PyObject *Pipeline_add(PipelineObject *self, PyObject *arg)
{
	/*
	 * The path first: converting it may run Python code (__fspath__), which
	 * can let another thread in, or close this pipeline. From the checks to
	 * setting adding, nothing gives the GIL up.
	 */
	PyObject *bytes = NULL;
	if (!PyUnicode_FSConverter(arg, &bytes))
		return NULL;
	if (check_open(self) || busy_adding(self)) {
		Py_DECREF(bytes);
		return NULL;
	}
	int rc;
	self->waiting++; /* a directory walk can take a while */
	self->adding = true;
	Py_BEGIN_ALLOW_THREADS
	rc = rf_pipeline_add(self->p, PyBytes_AS_STRING(bytes));
	Py_END_ALLOW_THREADS
	self->adding = false;
	self->waiting--;
	Py_DECREF(bytes);
	if (rc) {
		raise_pipeline(self, rc, rc == RF_EIO || rc == RF_ENOMEM);
		maybe_free(self);
		return NULL;
	}
	maybe_free(self);
	Py_RETURN_NONE;
}

static PyObject *Pipeline_start(PipelineObject *self, PyObject *Py_UNUSED(ignored))
{
	if (check_open(self))
		return NULL;
	if (self->started)
		Py_RETURN_NONE;
	if (busy_adding(self))
		return NULL;
	/*
	 * The GIL stays held: starting takes milliseconds, and holding it makes
	 * two threads that both start (each iterating the pipeline) start it once.
	 */
	int rc = rf_pipeline_start(self->p);
	if (rc == 0) {
		rf_stats s;
		self->started = true;
		if (rf_pipeline_stats(self->p, &s) == 0)
			self->pool = s.batch_pool;
	}
	/* A start refused outright (started, canceled) writes no message; one that failed does. */
	PyObject *ret = rc ? raise_pipeline(self, rc, rc != RF_ESTATE && rc != RF_ECANCELED) : Py_NewRef(Py_None);
	maybe_free(self);
	return ret;
}

static uint64_t monotonic_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static PyObject *new_batch(PipelineObject *self, rf_batch *b)
{
	BatchObject *batch = PyObject_New(BatchObject, &BatchType);
	if (!batch) {
		rf_batch_release(b);
		return NULL;
	}
	batch->owner = (PipelineObject *)Py_NewRef(self);
	batch->b = b;
	batch->exports = 0;
	self->live_batches++;
	return (PyObject *)batch;
}

/* One wait of at most SIGNAL_CHECK_MS; returns the rf code. */
static int wait_slice(PipelineObject *self, rf_batch **b)
{
	int rc;
	self->waiting++;
	Py_BEGIN_ALLOW_THREADS
	rc = rf_pipeline_next_timeout(self->p, b, SIGNAL_CHECK_MS);
	Py_END_ALLOW_THREADS
	self->waiting--;
	return rc;
}

static PyObject *next_batch(PipelineObject *self);

/* next() -> Batch, or None after the last batch. */
static PyObject *Pipeline_next(PipelineObject *self, PyObject *Py_UNUSED(ignored))
{
	if (check_open(self))
		return NULL;
	if (!self->started)
		return raise_code(RF_ESTATE, "start() the pipeline first");
	return next_batch(self);
}

static PyObject *next_batch(PipelineObject *self)
{
	uint64_t stalled_since = 0;
	for (;;) {
		/*
		 * Every batch of the pool held by Python objects, and none given back
		 * for POOL_STALL_MS: whoever holds them is not about to (one thread
		 * holding the whole pool would wait for ever). Threads that work and
		 * release keep resetting the clock; the end of the data still comes
		 * through the waits below.
		 */
		uint64_t now = monotonic_ns();
		if (!self->pool || (size_t)self->live_batches < self->pool)
			stalled_since = 0;
		else if (!stalled_since)
			stalled_since = now;
		uint64_t since = stalled_since > self->last_release_ns ? stalled_since : self->last_release_ns;
		if (stalled_since && now - since >= (uint64_t)POOL_STALL_MS * 1000000u) {
			char msg[320];
			snprintf(msg, sizeof(msg),
				 "all %zu batches of the pool have been held by Python objects for %d ms with none "
				 "given back: release batches (or copy their arrays) before asking for the next one, "
				 "or raise pipeline.prefetch_batches",
				 self->pool, POOL_STALL_MS);
			return raise_code(RF_ESTATE, msg);
		}
		rf_batch *b = NULL;
		int rc = wait_slice(self, &b);
		if (rc == 0) {
			PyObject *batch = new_batch(self, b);
			maybe_free(self);
			return batch;
		}
		if (rc == RF_EOF) {
			maybe_free(self);
			Py_RETURN_NONE;
		}
		if (rc != RF_ETIMEDOUT) {
			/* Stopped by a failure (its message), or canceled (none of its own). */
			raise_pipeline(self, rc, rc != RF_ECANCELED);
			maybe_free(self);
			return NULL;
		}
		/* Ctrl-C: the KeyboardInterrupt goes up; the pipeline is left as it is. */
		if (PyErr_CheckSignals() < 0 || check_open(self)) {
			maybe_free(self);
			return NULL;
		}
	}
}

static PyObject *Pipeline_cancel(PipelineObject *self, PyObject *Py_UNUSED(ignored))
{
	if (self->p)
		rf_pipeline_cancel(self->p);
	Py_RETURN_NONE;
}

static PyObject *Pipeline_close(PipelineObject *self, PyObject *Py_UNUSED(ignored))
{
	if (self->p && !self->close_requested) {
		self->close_requested = true;
		rf_pipeline_cancel(self->p);
		maybe_free(self);
	}
	Py_RETURN_NONE;
}

static int set_item(PyObject *dict, const char *key, PyObject *value)
{
	if (!value)
		return -1;
	int rc = PyDict_SetItemString(dict, key, value);
	Py_DECREF(value);
	return rc;
}

static PyObject *stage_dict(const rf_stage_stats *st)
{
	return Py_BuildValue("{s:i,s:K,s:d,s:d,s:d,s:d}", "threads", st->threads, "items",
			     (unsigned long long)st->items, "busy_seconds", st->busy_seconds, "starved_seconds",
			     st->starved_seconds, "blocked_seconds", st->blocked_seconds, "cpu_seconds",
			     st->cpu_seconds);
}

static PyObject *queue_dict(const rf_queue_stats *q)
{
	return Py_BuildValue("{s:n,s:n,s:n}", "capacity", (Py_ssize_t)q->capacity, "depth", (Py_ssize_t)q->depth,
			     "peak_depth", (Py_ssize_t)q->peak_depth);
}

/* Adds "stages", "queues" and "bottleneck" to the stats dict d. */
static int add_stage_stats(PyObject *d, const rf_stats *s)
{
	PyObject *stages = PyDict_New(), *queues = PyDict_New();
	int rc = stages && queues ? 0 : -1;
	for (int i = 0; rc == 0 && i < RF_STAGE_COUNT; i++)
		rc = set_item(stages, s->stages[i].name, stage_dict(&s->stages[i]));
	for (int i = 0; rc == 0 && i < RF_QUEUE_COUNT; i++)
		rc = set_item(queues, s->queues[i].name, queue_dict(&s->queues[i]));
	if (rc == 0)
		rc = PyDict_SetItemString(d, "stages", stages);
	if (rc == 0)
		rc = PyDict_SetItemString(d, "queues", queues);
	Py_XDECREF(stages);
	Py_XDECREF(queues);
	char advice[256] = "";
	int stage = rf_stats_bottleneck(s, advice, sizeof(advice));
	if (rc == 0 && stage >= 0)
		rc = set_item(d, "bottleneck", Py_BuildValue("(ss)", s->stages[stage].name, advice));
	else if (rc == 0)
		rc = PyDict_SetItemString(d, "bottleneck", Py_None);
	return rc;
}

static PyObject *Pipeline_stats(PipelineObject *self, PyObject *Py_UNUSED(ignored))
{
	if (!self->p)
		return raise_code(RF_ESTATE, "the pipeline is closed");
	rf_stats s;
	int rc = rf_pipeline_stats(self->p, &s);
	if (rc)
		return raise_pipeline(self, rc, false);
	PyObject *d = Py_BuildValue(
		"{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:d,s:d,s:d,s:d,s:d,s:s,s:n}", "total", (unsigned long long)s.total,
		"items", (unsigned long long)s.items, "ok", (unsigned long long)s.ok, "failed",
		(unsigned long long)s.failed, "dropped", (unsigned long long)s.dropped, "batches",
		(unsigned long long)s.batches, "bytes_read", (unsigned long long)s.bytes_read, "wall_seconds",
		s.wall_seconds, "items_per_second", s.items_per_second, "mb_per_second", s.mb_per_second,
		"first_batch_seconds", s.first_batch_seconds, "starved_fraction", s.starved_fraction,
		"loader_backend", s.loader_backend ? s.loader_backend : "", "batch_pool", (Py_ssize_t)s.batch_pool);
	if (d && add_stage_stats(d, &s) != 0)
		Py_CLEAR(d);
	return d;
}

static PyObject *Pipeline_save_state(PipelineObject *self, PyObject *Py_UNUSED(ignored))
{
	if (check_open(self))
		return NULL;
	char buf[256];
	int rc = rf_pipeline_save_state(self->p, buf, sizeof(buf));
	return rc ? raise_pipeline(self, rc, false) : PyUnicode_FromString(buf);
}

static PyObject *Pipeline_resume(PipelineObject *self, PyObject *arg)
{
	if (check_open(self) || busy_adding(self))
		return NULL;
	const char *state = PyUnicode_AsUTF8(arg);
	if (!state)
		return NULL;
	int rc = rf_pipeline_resume(self->p, state);
	return rc ? raise_pipeline(self, rc, rc == RF_EINVAL) : Py_NewRef(Py_None);
}

static PyObject *Pipeline_get_item_count(PipelineObject *self, void *Py_UNUSED(closure))
{
	return PyLong_FromSize_t(self->p ? rf_pipeline_item_count(self->p) : self->items_at_close);
}

/* (layout, height, width, channels, batch_size): what numpy needs to shape a batch. */
static PyObject *Pipeline_get_output(PipelineObject *self, void *Py_UNUSED(closure))
{
	const rf_config *c = &self->cfg;
	return Py_BuildValue("(siiii)", c->output.layout == RF_LAYOUT_NCHW_F32 ? "nchw_f32" : "nhwc_u8",
			     c->output.height, c->output.width, c->output.channels, c->batch.size);
}

static PyObject *Pipeline_get_closed(PipelineObject *self, void *Py_UNUSED(closure))
{
	return PyBool_FromLong(!self->p || self->close_requested);
}

static PyMethodDef Pipeline_methods[] = {
	{"add", (PyCFunction)Pipeline_add, METH_O, "add(path): a file, a directory or @LIST (before start)."},
	{"start", (PyCFunction)Pipeline_start, METH_NOARGS, "start(): starts the stage threads (once)."},
	{"next", (PyCFunction)Pipeline_next, METH_NOARGS,
	 "next() -> Batch, or None after the last one. Waits with the GIL released."},
	{"cancel", (PyCFunction)Pipeline_cancel, METH_NOARGS, "cancel(): stops the run from any thread."},
	{"close", (PyCFunction)Pipeline_close, METH_NOARGS,
	 "close(): cancels, and frees the pipeline once every batch is given back."},
	{"stats", (PyCFunction)Pipeline_stats, METH_NOARGS, "stats() -> dict of counters (rf_pipeline_stats)."},
	{"save_state", (PyCFunction)Pipeline_save_state, METH_NOARGS, "save_state() -> str position."},
	{"resume", (PyCFunction)Pipeline_resume, METH_O, "resume(state): continue there (before start)."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef Pipeline_getset[] = {
	{"item_count", (getter)Pipeline_get_item_count, NULL, "inputs added so far", NULL},
	{"output", (getter)Pipeline_get_output, NULL, "(layout, height, width, channels, batch_size)", NULL},
	{"closed", (getter)Pipeline_get_closed, NULL, "True once close() was called", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PipelineType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ringfeed._ringfeed.Pipeline",
	.tp_basicsize = sizeof(PipelineObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Pipeline(settings, config=None): a ringfeed pipeline (see ringfeed.Pipeline).",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Pipeline_init,
	.tp_dealloc = (destructor)Pipeline_dealloc,
	.tp_methods = Pipeline_methods,
	.tp_getset = Pipeline_getset,
};

/* ---- Batch ------------------------------------------------------------------------ */

static int check_held(BatchObject *self)
{
	if (self->b)
		return 0;
	PyErr_SetString(PyExc_ValueError, "the batch was released");
	return -1;
}

static void give_back(BatchObject *self)
{
	rf_batch_release(self->b);
	self->b = NULL;
	self->owner->live_batches--;
	self->owner->last_release_ns = monotonic_ns();
	maybe_free(self->owner);
}

static void Batch_dealloc(BatchObject *self)
{
	if (self->b)
		give_back(self);
	Py_DECREF(self->owner);
	PyObject_Free(self);
}

static int Batch_getbuffer(BatchObject *self, Py_buffer *view, int flags)
{
	if (!self->b) {
		PyErr_SetString(PyExc_BufferError, "the batch was released");
		view->obj = NULL;
		return -1;
	}
	/* Writable: until release the memory is the consumer's alone (in-place augmentation is fine). */
	Py_ssize_t len = (Py_ssize_t)(rf_batch_count(self->b) * rf_batch_slot_bytes(self->b));
	if (PyBuffer_FillInfo(view, (PyObject *)self, (void *)rf_batch_data(self->b), len, 0, flags) < 0)
		return -1;
	self->exports++;
	return 0;
}

static void Batch_releasebuffer(BatchObject *self, Py_buffer *Py_UNUSED(view))
{
	self->exports--;
}

static PyBufferProcs Batch_as_buffer = {
	.bf_getbuffer = (getbufferproc)Batch_getbuffer,
	.bf_releasebuffer = (releasebufferproc)Batch_releasebuffer,
};

static PyObject *Batch_release(BatchObject *self, PyObject *Py_UNUSED(ignored))
{
	if (!self->b)
		Py_RETURN_NONE;
	if (self->exports > 0) {
		return PyErr_Format(PyExc_BufferError,
				    "%zd view(s) of this batch (numpy arrays, memoryviews) are alive: delete "
				    "them or copy the data before release()",
				    self->exports);
	}
	give_back(self);
	Py_RETURN_NONE;
}

static PyObject *Batch_get_count(BatchObject *self, void *Py_UNUSED(closure))
{
	return check_held(self) ? NULL : PyLong_FromSize_t(rf_batch_count(self->b));
}

static PyObject *Batch_get_slot_bytes(BatchObject *self, void *Py_UNUSED(closure))
{
	return check_held(self) ? NULL : PyLong_FromSize_t(rf_batch_slot_bytes(self->b));
}

static PyObject *Batch_get_epoch(BatchObject *self, void *Py_UNUSED(closure))
{
	return check_held(self) ? NULL : PyLong_FromUnsignedLong(rf_batch_epoch(self->b));
}

static PyObject *Batch_get_sequence(BatchObject *self, void *Py_UNUSED(closure))
{
	return check_held(self) ? NULL : PyLong_FromUnsignedLongLong(rf_batch_sequence(self->b));
}

static PyObject *Batch_get_released(BatchObject *self, void *Py_UNUSED(closure))
{
	return PyBool_FromLong(self->b == NULL);
}

static PyObject *Batch_get_indices(BatchObject *self, void *Py_UNUSED(closure))
{
	if (check_held(self))
		return NULL;
	size_t n = rf_batch_count(self->b);
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		PyObject *v = PyLong_FromUnsignedLongLong(rf_batch_index(self->b, i));
		if (!v) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, v);
	}
	return list;
}

static PyObject *Batch_get_paths(BatchObject *self, void *Py_UNUSED(closure))
{
	if (check_held(self))
		return NULL;
	size_t n = rf_batch_count(self->b);
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		const char *path = rf_batch_path(self->b, i);
		PyObject *v = PyUnicode_DecodeFSDefault(path ? path : "");
		if (!v) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, v);
	}
	return list;
}

/* [(index, path, code, reason, epoch)] for the items that failed since the previous batch. */
static PyObject *Batch_get_errors(BatchObject *self, void *Py_UNUSED(closure))
{
	if (check_held(self))
		return NULL;
	size_t n = rf_batch_error_count(self->b);
	PyObject *list = PyList_New((Py_ssize_t)n);
	for (size_t i = 0; list && i < n; i++) {
		const rf_item_error *e = rf_batch_error(self->b, i);
		PyObject *v = Py_BuildValue("(KO&isI)", (unsigned long long)e->index, PyUnicode_DecodeFSDefault,
					    e->path ? e->path : "", e->code, e->reason ? e->reason : "",
					    (unsigned int)e->epoch);
		if (!v) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, v);
	}
	return list;
}

static PyMethodDef Batch_methods[] = {
	{"release", (PyCFunction)Batch_release, METH_NOARGS,
	 "release(): gives the batch back to the pool; BufferError while views of it are alive."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef Batch_getset[] = {
	{"count", (getter)Batch_get_count, NULL, "images in the batch", NULL},
	{"slot_bytes", (getter)Batch_get_slot_bytes, NULL, "bytes per image", NULL},
	{"epoch", (getter)Batch_get_epoch, NULL, "epoch of the batch's images", NULL},
	{"sequence", (getter)Batch_get_sequence, NULL, "batch number, from 0", NULL},
	{"indices", (getter)Batch_get_indices, NULL, "input index of each image", NULL},
	{"paths", (getter)Batch_get_paths, NULL, "path of each image", NULL},
	{"errors", (getter)Batch_get_errors, NULL, "(index, path, code, reason, epoch) per failed item", NULL},
	{"released", (getter)Batch_get_released, NULL, "True once given back", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BatchType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "ringfeed._ringfeed.Batch",
	.tp_basicsize = sizeof(BatchObject),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A batch from Pipeline.next(); its tensor is exported through the buffer protocol.",
	.tp_dealloc = (destructor)Batch_dealloc,
	.tp_as_buffer = &Batch_as_buffer,
	.tp_methods = Batch_methods,
	.tp_getset = Batch_getset,
};

/* ---- module ----------------------------------------------------------------------- */

static PyObject *module_version(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
	return PyUnicode_FromString(rf_version());
}

static PyMethodDef module_methods[] = {
	{"version", module_version, METH_NOARGS, "version() -> the C library's version string."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT, .m_name = "ringfeed._ringfeed",
	.m_doc = "The C side of the ringfeed package.",
	.m_size = -1,
	.m_methods = module_methods,
};

static int add_exceptions(PyObject *m)
{
	Error = PyErr_NewExceptionWithDoc("ringfeed.Error", "A ringfeed failure; .code and .name say which.", NULL,
					  NULL);
	if (!Error)
		return -1;
	PyObject *config_bases = PyTuple_Pack(2, Error, PyExc_ValueError);
	if (!config_bases)
		return -1;
	ConfigError = PyErr_NewExceptionWithDoc("ringfeed.ConfigError", "An invalid configuration (RF_ECONFIG).",
						config_bases, NULL);
	Py_DECREF(config_bases);
	Canceled = PyErr_NewExceptionWithDoc("ringfeed.Canceled", "The run was canceled (RF_ECANCELED).", Error,
					     NULL);
	if (!ConfigError || !Canceled)
		return -1;
	if (PyModule_AddObjectRef(m, "Error", Error) || PyModule_AddObjectRef(m, "ConfigError", ConfigError) ||
	    PyModule_AddObjectRef(m, "Canceled", Canceled))
		return -1;
	return 0;
}

PyMODINIT_FUNC PyInit__ringfeed(void)
{
	if (PyType_Ready(&PipelineType) < 0 || PyType_Ready(&BatchType) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&module_def);
	if (!m)
		return NULL;
	if (add_exceptions(m) || PyModule_AddObjectRef(m, "Pipeline", (PyObject *)&PipelineType) ||
	    PyModule_AddObjectRef(m, "Batch", (PyObject *)&BatchType)) {
		Py_DECREF(m);
		return NULL;
	}
	return m;
}
