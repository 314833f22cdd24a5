/* handler.c -- one handler call. */
#include "handler.h"

#include "api.h"
#include "value.h"

void bh__handler_run(const bh__handler_env_t *env, bh__job_t *job)
{
    bh__delivery_t *d = job->d;
    if (bh__payload_decode(bh__api(), d->content_type, d->body, d->body_len, &job->payload,
                           job->err, sizeof job->err)) {
        job->outcome = 0;
        return;
    }
    bh__ctx_t ctx;
    job->msg.payload = job->payload;
    bh__ctx_init(&ctx, env->service, env->format, env->log, job, NULL);
    int o = job->handler(&ctx.pub, &job->msg, env->state);
    if (o != BH_DONE && o != BH_RETRY && o != BH_REJECT) {
        bh__log(env->log, BH_ALERT, job->msg.conversation_id,
                "handler for %s '%s' returned %d, not a bh_outcome_t; treating it as BH_RETRY",
                bh__kind_name(job->msg.kind), d->routing_key, o);
        o = BH_RETRY;
    }
    job->outcome = (bh_outcome_t)o;
    if (o == BH_DONE && job->msg.kind == BH_KIND_COMMAND && !job->has_result)
        bh__log(env->log, BH_WARNING, job->msg.conversation_id,
                "command '%s' was handled without a result", d->routing_key);
    bh_value_free(job->payload);
    job->payload = NULL;
    job->msg.payload = NULL;
}
