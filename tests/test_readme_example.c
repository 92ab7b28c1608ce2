/* The README's example, verbatim but for the check of the total. */
#include <ebus/ebus.h>
#include <stdio.h>

static int on_fill(const ebus_event_t *ev, void *ctx)
{
    long *total = ctx;
    *total += *(const int *)ev->data;   /* runs on the topic's executor */
    return 0;                           /* non-zero is counted as an error */
}

int main(void)
{
    ebus_config_t cfg = {0};            /* zero means default everywhere */
    cfg.executors = 2;
    ebus_t *bus;
    ebus_topic_t *fills;
    ebus_sub_id sub;
    long total = 0;

    if (ebus_create(&cfg, &bus) != EBUS_OK)
        return 1;
    ebus_topic(bus, "orders.eu.fill", &fills);      /* intern once, keep the handle */
    ebus_subscribe(fills, on_fill, &total, &sub);

    for (int qty = 1; qty <= 100; qty++) {
        int rc = ebus_publish(fills, &qty, sizeof qty);   /* copied into the lane */
        if (rc != EBUS_OK)
            fprintf(stderr, "publish: %s\n", ebus_strerror(rc));
    }
    ebus_flush(bus, 0);                 /* every accepted event delivered */
    printf("total %ld\n", total);       /* 5050 */
    if (total != 5050)
        return 1;

    ebus_unsubscribe(bus, sub);         /* on return, on_fill never runs again */
    ebus_shutdown(bus, EBUS_SHUTDOWN_DRAIN);
    ebus_destroy(bus);
    return 0;
}
