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
#include <stddef.h>

#include <hiredis/read.h>

/*
 * Longest array a reply may hold.  Ours are short: SCAN with COUNT 1000,
 * HGETALL of a meta hash, EXEC of a few commands.
 */
#define BE_RESP_MAX_ELEMENTS (1 << 20)

/*
 * Longest bulk string a reply may hold, and so about the most bytes the
 * reader buffers for one unfinished reply: twice the largest max_size
 * (64 MiB), above any session, meta hash field or backup item we read.
 * hiredis waits for all the bytes a "$<len>" header announces (up to
 * 2^63), buffering them until redis_timeout; be_resp_check_pending()
 * refuses such a header at once, and a line item ('+', '-', ':') that
 * runs on that long without its CRLF.
 */
#define BE_RESP_MAX_BULK (128 * 1024 * 1024)

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

/**
 * Sets the longest bulk string 'r' takes (BE_RESP_MAX_BULK when never
 * set); tests set small ones.
 */
void be_resp_set_max_bulk(redisReader *r, size_t max_bulk);

/**
 * To call when redisReaderGetReply() gave no reply and no error: whether
 * the unfinished reply 'r' waits for is over the limit (a bulk string
 * announced longer than the reader's max_bulk, or more than that many
 * bytes buffered for one item).  Then the caller treats it as a protocol
 * error (-EPROTO) and drops the connection: what is buffered can never
 * become a reply it takes.
 */
bool be_resp_check_pending(const redisReader *r);

#endif /* BACKEND_RESP_H */
