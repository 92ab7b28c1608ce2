/* Harness of the README's pull-consumer loop: three events, the middle one
 * larger than the snippet's first buffer; the loop must take all three and
 * end when the bus shuts down. */
#include "consumer_common.h"

static void snippet(ebus_t *bus)
{
/* SNIPPET */
}

int main(void)
{
	static const size_t lens[] = { 8, 300, 8 };
	return run("orders.*", "orders.eu", lens, 3, 3);
}
