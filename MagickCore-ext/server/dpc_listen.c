/*
 * dpc_listen: see dpc_listen.h.  A thin layer over evconnlistener: the
 * accept-error pause is the part both listeners used to keep a copy of.
 */
#include "dpc_listen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "dpc_util.h"

struct dpc_listen {
    struct dpc_listen_cfg cfg;
    char name[128];
    struct evconnlistener *ev;
    struct event *resume;           /* ends a pause after accept failed */
    int want;                       /* the owner's dpc_listen_enable() */
    int paused;
};

/* On when the owner wants it and no pause is running. */
static void apply(struct dpc_listen *l)
{
    if (l->want && !l->paused)
        evconnlistener_enable(l->ev);
    else
        evconnlistener_disable(l->ev);
}

static void on_accept(struct evconnlistener *ev, evutil_socket_t fd,
                      struct sockaddr *sa, int salen, void *arg)
{
    struct dpc_listen *l = arg;

    (void)ev;
    l->cfg.accept(l->cfg.arg, fd, sa, salen);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct dpc_listen *l = arg;

    (void)fd;
    (void)what;
    l->paused = 0;
    apply(l);
    if (l->cfg.paused != NULL)
        l->cfg.paused(l->cfg.arg, 0);
}

/* Out of descriptors (EMFILE, ENFILE) or memory: pause a second rather than
 * spin on a listener that stays readable; the backlog holds the clients. */
static void on_accept_error(struct evconnlistener *ev, void *arg)
{
    struct dpc_listen *l = arg;
    struct timeval second = { 1, 0 };
    int err = EVUTIL_SOCKET_ERROR();

    (void)ev;
    if (err == EINTR || err == EAGAIN || err == ECONNABORTED)
        return;
    dpc_log_limited(l->cfg.log, DPC_LOG_WARN,
                    "accept on %s: %s; not accepting for 1 s", l->name,
                    strerror(err));
    l->paused = 1;
    apply(l);
    event_add(l->resume, &second);
    if (l->cfg.paused != NULL)
        l->cfg.paused(l->cfg.arg, 1);
}

struct dpc_listen *dpc_listen_new(struct event_base *base, int fd,
                                  const struct dpc_listen_cfg *cfg, char *err,
                                  size_t errlen)
{
    struct dpc_listen *l = calloc(1, sizeof(*l));

    if (l == NULL)
        goto err;
    l->cfg = *cfg;
    snprintf(l->name, sizeof(l->name), "%s", cfg->name);
    l->cfg.name = l->name;
    l->want = 1;
    l->resume = evtimer_new(base, on_resume, l);
    if (l->resume == NULL)
        goto err;
    /* The backlog was set by the owner's listen(); 0 here keeps it. */
    l->ev = evconnlistener_new(base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0,
                               fd);
    if (l->ev == NULL)
        goto err;
    evconnlistener_set_error_cb(l->ev, on_accept_error);
    return l;
err:
    dpc_errf(err, errlen, "cannot listen on %s", cfg->name);
    if (l != NULL && l->resume != NULL)
        event_free(l->resume);
    free(l);
    close(fd);
    return NULL;
}

void dpc_listen_enable(struct dpc_listen *l, int on)
{
    l->want = on;
    apply(l);
}

int dpc_listen_paused(const struct dpc_listen *l)
{
    return l->paused;
}

void dpc_listen_free(struct dpc_listen *l)
{
    if (l == NULL)
        return;
    evconnlistener_free(l->ev);
    event_free(l->resume);
    free(l);
}
