/* The autotuner (see tune.h): parking threads beyond the active counts, and the tuner thread. */

#include "clock.h"
#include "pipeline.h"

/* How often the tuner looks at the stages. */
#define TICK_NS 50000000ULL
/* Ticks a condition must hold before the tuner acts on it (noise at 50 ms is large). */
#define PERSIST_TICKS 2
/* Ticks of a loader blocked on fed decoders before its depth halves (0.5 s). */
#define SHRINK_TICKS 10
/* A decoder trial (one thread fewer) runs this many ticks, and a failed one is not retried for HOLD_TICKS. */
#define TRIAL_TICKS 8
#define HOLD_TICKS 60

int rf__tune_init(rf__tune *t, const int start[RF__KNOB_COUNT], const int min[RF__KNOB_COUNT],
		  const int max[RF__KNOB_COUNT], const bool adaptive[RF__KNOB_COUNT])
{
	if (pthread_mutex_init(&t->lock, NULL) != 0)
		return RF_ESYS;
	if (pthread_cond_init(&t->changed, NULL) != 0) {
		pthread_mutex_destroy(&t->lock);
		return RF_ESYS;
	}
	if (rf__cond_init_monotonic(&t->wake) != 0) {
		pthread_cond_destroy(&t->changed);
		pthread_mutex_destroy(&t->lock);
		return RF_ESYS;
	}
	for (int k = 0; k < RF__KNOB_COUNT; k++) {
		atomic_store(&t->active[k], start[k]);
		t->min[k] = min[k];
		t->max[k] = max[k];
		t->adaptive[k] = adaptive[k];
	}
	t->ready = true;
	return 0;
}

void rf__tune_destroy(rf__tune *t)
{
	if (!t->ready)
		return;
	pthread_cond_destroy(&t->wake);
	pthread_cond_destroy(&t->changed);
	pthread_mutex_destroy(&t->lock);
	t->ready = false;
}

bool rf__tune_adaptive(const rf__tune *t)
{
	return t->adaptive[RF__KNOB_LOADER] || t->adaptive[RF__KNOB_DECODER];
}

void rf__tune_release(rf__tune *t)
{
	if (!t->ready)
		return;
	pthread_mutex_lock(&t->lock);
	t->released = true;
	pthread_cond_broadcast(&t->changed);
	pthread_cond_broadcast(&t->wake);
	pthread_mutex_unlock(&t->lock);
}

void rf__tune_wait_turn(rf_pipeline *p, int knob, int index)
{
	rf__tune *t = &p->tune;
	if (index < atomic_load(&t->active[knob]))
		return;
	pthread_mutex_lock(&t->lock);
	uint64_t since = rf__now_ns();
	t->parked[knob]++;
	t->parked_since_sum[knob] += since;
	while (!t->released && index >= atomic_load(&t->active[knob]))
		pthread_cond_wait(&t->changed, &t->lock);
	t->parked[knob]--;
	t->parked_since_sum[knob] -= since;
	t->parked_ns[knob] += rf__now_ns() - since;
	pthread_mutex_unlock(&t->lock);
}

uint64_t rf__tune_parked_ns(rf__tune *t, int knob, uint64_t now)
{
	if (!t->ready)
		return 0;
	pthread_mutex_lock(&t->lock);
	uint64_t ns = t->parked_ns[knob] + rf__open_ns((uint64_t)t->parked[knob], now, t->parked_since_sum[knob]);
	pthread_mutex_unlock(&t->lock);
	return ns;
}

static void set_active(rf__tune *t, int knob, int value)
{
	pthread_mutex_lock(&t->lock);
	atomic_store(&t->active[knob], value);
	atomic_fetch_add(&t->changes, 1);
	pthread_cond_broadcast(&t->changed);
	pthread_mutex_unlock(&t->lock);
}

/* Cumulative counters at one moment. */
struct look {
	uint64_t t;
	uint64_t active_ns[RF__KNOB_COUNT], starved_ns[RF__KNOB_COUNT], blocked_ns[RF__KNOB_COUNT];
	uint64_t cpu_ns, saturated_ns, decoded;
};

static void take_look(rf_pipeline *p, struct look *v)
{
	v->t = rf__now_ns();
	for (int k = 0; k < RF__KNOB_COUNT; k++) {
		rf__stage_counters *c = &p->stage[k];
		/* Waits still going count: a decoder blocked for a whole tick was not busy in it. */
		uint64_t alive, waited[RF__WAIT_KINDS];
		rf__stage_look(c, v->t, &alive, waited);
		uint64_t parked = rf__tune_parked_ns(&p->tune, k, v->t);
		v->active_ns[k] = alive > parked ? alive - parked : 0;
		v->starved_ns[k] = waited[RF__STARVED];
		v->blocked_ns[k] = waited[RF__BLOCKED];
	}
	v->cpu_ns = atomic_load(&p->stage[RF_STAGE_DECODER].cpu_ns);
	v->saturated_ns = atomic_load(&p->tune.saturated_ns);
	v->decoded = atomic_load(&p->stage[RF_STAGE_DECODER].items);
}

static double ratio(uint64_t part, uint64_t whole)
{
	return whole ? (double)part / (double)whole : 0;
}

static bool measure(rf_pipeline *p, const struct look *a, const struct look *b, rf__tune_tick *x)
{
	uint64_t dec = b->active_ns[RF__KNOB_DECODER] - a->active_ns[RF__KNOB_DECODER];
	uint64_t ld = b->active_ns[RF__KNOB_LOADER] - a->active_ns[RF__KNOB_LOADER];
	if (dec < TICK_NS / 4 || ld == 0)
		return false; /* too little happened to judge */
	x->dec_starved = ratio(b->starved_ns[RF__KNOB_DECODER] - a->starved_ns[RF__KNOB_DECODER], dec);
	x->dec_blocked = ratio(b->blocked_ns[RF__KNOB_DECODER] - a->blocked_ns[RF__KNOB_DECODER], dec);
	x->dec_busy = 1 - x->dec_starved - x->dec_blocked;
	x->dec_cpu = x->dec_busy > 0 ? ratio(b->cpu_ns - a->cpu_ns, dec) / x->dec_busy : 1;
	uint64_t ld_idle = (b->starved_ns[RF__KNOB_LOADER] - a->starved_ns[RF__KNOB_LOADER]) +
			   (b->blocked_ns[RF__KNOB_LOADER] - a->blocked_ns[RF__KNOB_LOADER]);
	x->load_blocked = ratio(ld_idle, ld);
	/* io_uring: time spent waiting with every allowed read in flight; pread: threads reading. */
	x->load_saturated = p->backend == RF_BACKEND_IO_URING
				    ? ratio(b->saturated_ns - a->saturated_ns, (b->t - a->t) * (uint64_t)p->loader_threads)
				    : 1 - x->load_blocked;
	x->rate = (double)(b->decoded - a->decoded) / rf__seconds(b->t - a->t);
	return true;
}

static void tune_loading(rf__tuner *s, const rf__tune_tick *x, int min, int max, int *active)
{
	int a = *active;
	bool starving = x->dec_starved > 0.05 && x->load_saturated > 0.5;
	s->deepen = starving ? s->deepen + 1 : 0;
	s->shrink = !starving && x->dec_starved < 0.02 && x->load_blocked > 0.5 ? s->shrink + 1 : 0;
	if (s->deepen >= PERSIST_TICKS && a < max) {
		*active = a * 2 < max ? a * 2 : max;
		s->deepen = 0;
	} else if (s->shrink >= SHRINK_TICKS && a > min) {
		*active = a / 2 > min ? a / 2 : min;
		s->shrink = 0;
	}
}

static double mean(const double *v, int n)
{
	double sum = 0;
	for (int i = 0; i < n; i++)
		sum += v[i];
	return n ? sum / n : 0;
}

/*
 * Decoders start at one per CPU. Saturated decoders with a CPU to run on get a
 * thread back (up to the CPUs); decoders that are busy but mostly off the CPU
 * (more threads than free cores) try one thread fewer, and keep it only if the
 * decode rate does not drop.
 */
static void tune_decoding(rf__tuner *s, const rf__tune_tick *x, int min, int max, int *active)
{
	int d = *active;
	s->recent_rate[s->recent++ % RF__TUNE_RECENT] = x->rate;
	if (s->trial > 0) {
		s->rate_sum += x->rate;
		s->rate_ticks++;
		if (--s->trial == 0) {
			if (s->rate_sum / s->rate_ticks < 0.97 * s->rate_before)
				*active = d + 1; /* it was worse: undo */
			s->hold = HOLD_TICKS; /* either way, let it settle */
		}
		return;
	}
	if (s->hold > 0)
		s->hold--;
	/* Saturated, on a CPU and not waiting for the consumer: a thread more would decode more. */
	if (x->dec_busy > 0.85 && x->dec_blocked < 0.05 && x->dec_cpu >= 0.75 && s->hold == 0 && d < max) {
		*active = d + 1;
		return;
	}
	/*
	 * Decoders add their CPU time once per image: a tick in which no image
	 * finished (images slower than a tick) shows them off the CPU whatever
	 * they did, so it counts neither for nor against oversubscription. And a
	 * trial needs a rate to hold: without images finishing recently, none.
	 */
	if (x->rate > 0)
		s->oversubscribed = x->dec_busy > 0.85 && x->dec_cpu < 0.6 ? s->oversubscribed + 1 : 0;
	double rate_before = s->recent >= RF__TUNE_RECENT ? mean(s->recent_rate, RF__TUNE_RECENT) : 0;
	if (s->oversubscribed >= 2 * PERSIST_TICKS && s->hold == 0 && d > min && rate_before > 0) {
		s->rate_before = rate_before;
		s->rate_sum = 0;
		s->rate_ticks = 0;
		s->trial = TRIAL_TICKS;
		s->oversubscribed = 0;
		*active = d - 1;
	}
}

void rf__tune_step(rf__tuner *s, const rf__tune_tick *x, const int min[RF__KNOB_COUNT],
		   const int max[RF__KNOB_COUNT], const bool adaptive[RF__KNOB_COUNT], int active[RF__KNOB_COUNT])
{
	if (adaptive[RF__KNOB_LOADER])
		tune_loading(s, x, min[RF__KNOB_LOADER], max[RF__KNOB_LOADER], &active[RF__KNOB_LOADER]);
	if (adaptive[RF__KNOB_DECODER])
		tune_decoding(s, x, min[RF__KNOB_DECODER], max[RF__KNOB_DECODER], &active[RF__KNOB_DECODER]);
}

void *rf__tune_main(void *pipeline)
{
	rf_pipeline *p = pipeline;
	rf__tune *t = &p->tune;
	rf__tuner s = {0};
	struct look prev, now;
	take_look(p, &prev);
	pthread_mutex_lock(&t->lock);
	while (!t->released) {
		struct timespec deadline = rf__deadline(TICK_NS);
		while (!t->released && pthread_cond_timedwait(&t->wake, &t->lock, &deadline) == 0)
			;
		if (t->released)
			break;
		pthread_mutex_unlock(&t->lock);
		take_look(p, &now);
		rf__tune_tick x;
		if (measure(p, &prev, &now, &x)) {
			int active[RF__KNOB_COUNT];
			for (int k = 0; k < RF__KNOB_COUNT; k++)
				active[k] = atomic_load(&t->active[k]);
			rf__tune_step(&s, &x, t->min, t->max, t->adaptive, active);
			for (int k = 0; k < RF__KNOB_COUNT; k++)
				if (active[k] != atomic_load(&t->active[k]))
					set_active(t, k, active[k]);
		}
		prev = now;
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}
