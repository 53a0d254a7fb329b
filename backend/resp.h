/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The RESP reader the transport (conn.c) parses every reply with, in one
 * place so that tests/fuzz/fuzz_resp.c fuzzes exactly what the daemon
 * and sessfs-migrate read.
 *
 * It is hiredis's reader with our own reply objects (the same struct
 * redisReply, freed with freeReplyObject()), because of what fuzz_resp
 * found: hiredis 0.14 allocates an array of as many elements as a "*<n>"
 * header says before any of them arrives, so the 13 bytes
 * "*2147483647\r\n" from a hostile or broken server take 16 GB of the
 * daemon's address space (or fail it with "Out of memory" where that is
 * limited).  Here an array longer than BE_RESP_MAX_ELEMENTS is refused: a
 * protocol error (conn.c: -EPROTO), the connection is dropped.
 */
#ifndef BACKEND_RESP_H
#define BACKEND_RESP_H

#include <stdbool.h>

#include <hiredis/read.h>

/*
 * Longest array a reply may hold.  Ours are short: SCAN with COUNT 1000,
 * HGETALL of a meta hash, EXEC of a few commands.
 */
#define BE_RESP_MAX_ELEMENTS (1 << 20)

/**
 * Returns a new reader, or NULL on ENOMEM.  Free it with
 * be_resp_reader_free(), not redisReaderFree().  A reader is used by one
 * thread at a time.
 */
redisReader *be_resp_reader_new(void);

/** Frees 'r' and any reply it holds; NULL allowed. */
void be_resp_reader_free(redisReader *r);

/**
 * True when the failed reader 'r' (r->err set) refused a reply as too
 * large (an array over BE_RESP_MAX_ELEMENTS) rather than ran out of
 * memory: r->err then says REDIS_ERR_OOM, but the error is the server's.
 */
bool be_resp_refused(const redisReader *r);

#endif /* BACKEND_RESP_H */
