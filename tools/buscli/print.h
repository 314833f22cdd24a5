/* print.h -- how monitor, inspect and send show a bus message: first as a
 * JSON description (also what --json prints, one object per line), then as
 * text from that description. */
#ifndef BUSCLI_PRINT_H
#define BUSCLI_PRINT_H

#include <stdio.h>

#include <jansson.h>

#include "amqp_util.h"

/* Describe a message as the wire contract reads it:
 *   exchange, routing_key, kind ("event", "command", "result", "log" or
 *   "invalid": see docs/wire-conventions.md; a dead letter is classified by its
 *   x-first-death-exchange; a message from any other exchange by its shape,
 *   else "unknown"), redelivered, conversation_id, correlation_id,
 *   reply_to, status, content_type, delivery_mode (null when absent),
 *   headers (the others), properties (any the contract leaves unset, only
 *   when set), dead_letter (x-death and x-first-death-*, only when set),
 *   size, and payload (decoded to JSON) or payload_error plus body (the
 *   raw bytes as text, or hex when not UTF-8).
 * NULL when out of memory. */
json_t *bh__cli_describe(const bh__cli_msg_t *msg);

/* The description as indented text under a heading line "<title> <exchange>
 * <routing key> (<kind>)". */
void bh__cli_print_text(FILE *f, const char *title, const json_t *d);
/* One compact JSON line. */
void bh__cli_print_json(FILE *f, const json_t *d);

#endif
