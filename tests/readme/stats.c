/* Harness of the README's statistics snippet: it creates its own bus. */
#include <ebus/ebus.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static ebus_t *snippet(void)
{
	ebus_t *bus;
/* SNIPPET */
	return bus;
}

int main(void)
{
	ebus_t *bus = snippet();
	if (!bus)
		return 1;
	ebus_destroy(bus);
	return 0;
}
