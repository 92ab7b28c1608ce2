/* Harness of the README's ebus_await snippet: one event arrives after the
 * one-shot subscription is in place. */
#include "consumer_common.h"

static void snippet(ebus_t *bus)
{
/* SNIPPET */
}

int main(void)
{
	static const size_t lens[] = { 16 };
	return run("fills.eu", "fills.eu", lens, 1, 1);
}
