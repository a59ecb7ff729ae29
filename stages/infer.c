/* Push API: infer.threads threads (the caller among them) pull batches and call the user's function. */
#include <pthread.h>
#include <stdlib.h>

#include "pipeline.h"

struct infer_ctx {
	rf_pipeline *p;
	rf_infer_fn fn;
	void *user;
};

/* One inference thread's loop; returns 0 at the end of data or the code that stopped it. */
static int infer_loop(struct infer_ctx *ctx)
{
	for (;;) {
		rf_batch *b;
		int rc = rf_pipeline_next(ctx->p, &b);
		if (rc == RF_EOF)
			return 0;
		if (rc != 0)
			return rc;
		int user_rc = ctx->fn(b, ctx->user);
		rf_batch_release(b);
		if (user_rc != 0) {
			rf__pipeline_fail(ctx->p, RF_EUSER, "inference function returned %d", user_rc);
			return RF_EUSER;
		}
	}
}

static void *infer_main(void *arg)
{
	infer_loop(arg);
	return NULL;
}

int rf_pipeline_run(rf_pipeline *p, rf_infer_fn fn, void *user)
{
	if (!p || !fn)
		return RF_EINVAL;
	if (atomic_load(&p->state) != RF_STATE_RUNNING)
		return RF_ESTATE;
	struct infer_ctx ctx = {p, fn, user};
	int extra = p->cfg.infer.threads - 1;
	pthread_t *threads = extra > 0 ? calloc((size_t)extra, sizeof(*threads)) : NULL;
	if (extra > 0 && !threads)
		return RF_ENOMEM;
	int started = 0;
	atomic_fetch_add(&p->stage[RF_STAGE_INFER].threads, 1);
	while (started < extra && pthread_create(&threads[started], NULL, infer_main, &ctx) == 0) {
		atomic_fetch_add(&p->stage[RF_STAGE_INFER].threads, 1);
		started++;
	}
	int rc = infer_loop(&ctx);
	for (int i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	free(threads);
	/* A failure seen by another thread (or recorded by the pipeline) wins over our own EOF. */
	if (rc == 0)
		rc = rf__pipeline_fatal(p);
	return rc;
}
