/* publisher.c -- the queue behind bh_publisher_event. */
#include "publisher.h"

void bh__publisher_init(bh__publisher_t *p, const char *service, bh_format_t format,
                        bh__logger_t *log)
{
    p->service = service;
    p->format = format;
    p->log = log;
    p->max_message = BH__MAX_MESSAGE_DEFAULT;
    p->max = BH_PUBLISHER_MAX;
    uv_mutex_init(&p->mu);
    p->head = NULL;
    p->tail = &p->head;
    p->unconfirmed = 0;
    p->closed = false;
    p->wake = NULL;
}

int bh__publisher_reserve(bh__publisher_t *p)
{
    int rc = BH_OK;
    uv_mutex_lock(&p->mu);
    if (p->closed) rc = BH_ESTATE;
    else if (p->unconfirmed >= p->max) rc = BH_EFULL;
    else p->unconfirmed++;
    uv_mutex_unlock(&p->mu);
    return rc;
}

bool bh__publisher_push(bh__publisher_t *p, bh__job_t *job)
{
    uv_mutex_lock(&p->mu);
    bool ok = !p->closed;
    if (ok) {
        job->next = NULL;
        *p->tail = job;
        p->tail = &job->next;
        if (p->wake) uv_async_send(p->wake);
    } else {
        p->unconfirmed--;
    }
    uv_mutex_unlock(&p->mu);
    return ok;
}

void bh__publisher_release(bh__publisher_t *p)
{
    uv_mutex_lock(&p->mu);
    p->unconfirmed--;
    uv_mutex_unlock(&p->mu);
}

void bh__publisher_attach(bh__publisher_t *p, uv_async_t *wake)
{
    uv_mutex_lock(&p->mu);
    p->wake = wake;
    if (p->head) uv_async_send(wake);
    uv_mutex_unlock(&p->mu);
}

bh__job_t *bh__publisher_take(bh__publisher_t *p)
{
    uv_mutex_lock(&p->mu);
    bh__job_t *list = p->head;
    p->head = NULL;
    p->tail = &p->head;
    uv_mutex_unlock(&p->mu);
    return list;
}

void bh__publisher_close(bh__publisher_t *p, bool detach)
{
    uv_mutex_lock(&p->mu);
    p->closed = true;
    if (detach) p->wake = NULL;
    uv_mutex_unlock(&p->mu);
}

void bh__publisher_free(bh__publisher_t *p) { uv_mutex_destroy(&p->mu); }
