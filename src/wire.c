/* wire.c — frames on pipes: packing headers, whole blocking writes and reads
 * for the worker, incremental non-blocking reads for the parent.
 *
 * Nothing here touches Python objects, so all of it runs without the GIL.
 */
#include "wire.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
pack_le(unsigned char *out, uint64_t value, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++) {
        out[i] = (unsigned char)(value >> (8 * i));
    }
}

static uint64_t
unpack_le(const unsigned char *in, size_t nbytes)
{
    uint64_t value = 0;
    for (size_t i = 0; i < nbytes; i++) {
        value |= (uint64_t)in[i] << (8 * i);
    }
    return value;
}

void
wire_pack_header(unsigned char header[WIRE_HEADER_SIZE], uint64_t length, uint32_t kind,
                 uint32_t flags)
{
    pack_le(header + WIRE_LENGTH_AT, length, sizeof(uint64_t));
    pack_le(header + WIRE_KIND_AT, kind, sizeof(uint32_t));
    pack_le(header + WIRE_FLAGS_AT, flags, sizeof(uint32_t));
}

void
wire_unpack_header(const unsigned char header[WIRE_HEADER_SIZE], uint64_t *length,
                   uint32_t *kind, uint32_t *flags)
{
    *length = unpack_le(header + WIRE_LENGTH_AT, sizeof(uint64_t));
    *kind = (uint32_t)unpack_le(header + WIRE_KIND_AT, sizeof(uint32_t));
    *flags = (uint32_t)unpack_le(header + WIRE_FLAGS_AT, sizeof(uint32_t));
}

int
wire_write_all(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t n = writev(fd, iov, iovcnt);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* One read() asks for at most this much (Linux reads at most ~2 GiB). */
#define READ_CHUNK ((size_t)1 << 30)

wire_read_status
wire_read_all(int fd, void *buf, size_t size, size_t *done)
{
    while (*done < size) {
        size_t want = size - *done < READ_CHUNK ? size - *done : READ_CHUNK;
        ssize_t n = read(fd, (char *)buf + *done, want);
        if (n < 0) {
            return WIRE_READ_FAILED;    /* EINTR included: the caller decides */
        }
        if (n == 0) {
            if (*done == 0) {
                return WIRE_READ_EOF;
            }
            errno = EPIPE;              /* the writer died in the middle */
            return WIRE_READ_FAILED;
        }
        *done += (size_t)n;
    }
    return WIRE_READ_DONE;
}

/* One non-blocking read: bytes read (> 0), 0 at end of file, -1 when
 * nothing is there yet, -2 on error (errno).  EINTR is retried. */
static ssize_t
read_some(int fd, void *buf, size_t size)
{
    if (size > READ_CHUNK) {
        size = READ_CHUNK;
    }
    for (;;) {
        ssize_t n = read(fd, buf, size);
        if (n >= 0) {
            return n;
        }
        if (errno != EINTR) {
            return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : -2;
        }
    }
}

/* Cut what the stage holds into the frame being assembled.  -1 with errno
 * when the header announces what cannot be held. */
static int
inbox_feed(wire_inbox *box)
{
    size_t staged = box->stage_end - box->stage_at;
    if (box->header_have < WIRE_HEADER_SIZE) {
        size_t n = WIRE_HEADER_SIZE - box->header_have;
        n = n < staged ? n : staged;
        memcpy(box->header + box->header_have, box->stage + box->stage_at, n);
        box->header_have += n;
        box->stage_at += n;
        staged -= n;
        if (box->header_have < WIRE_HEADER_SIZE) {
            return 0;
        }
        wire_unpack_header(box->header, &box->length, &box->kind, &box->flags);
        box->have = 0;
        if (box->length > (uint64_t)PTRDIFF_MAX) {
            errno = EFBIG;
            return -1;
        }
        box->payload = malloc(box->length > 0 ? (size_t)box->length : 1);
        if (box->payload == NULL) {
            errno = ENOMEM;
            return -1;
        }
    }
    uint64_t n = box->length - box->have;
    n = n < staged ? n : staged;
    memcpy(box->payload + box->have, box->stage + box->stage_at, (size_t)n);
    box->have += n;
    box->stage_at += (size_t)n;
    return 0;
}

wire_read_status
wire_inbox_read(wire_inbox *box, int fd)
{
    if (box->stage == NULL && (box->stage = malloc(WIRE_STAGE_SIZE)) == NULL) {
        errno = ENOMEM;
        return WIRE_READ_FAILED;
    }
    for (;;) {
        if (inbox_feed(box) < 0) {
            return WIRE_READ_FAILED;
        }
        if (box->header_have == WIRE_HEADER_SIZE && box->have == box->length) {
            return WIRE_READ_DONE;
        }
        /* The stage is used up and the frame is not whole: read more. */
        if (box->drained) {
            box->drained = 0;
            return WIRE_READ_MORE;
        }
        box->stage_at = box->stage_end = 0;
        int into_payload = box->header_have == WIRE_HEADER_SIZE &&
                           box->length - box->have >= WIRE_STAGE_SIZE;
        size_t want = into_payload ? (size_t)(box->length - box->have) : WIRE_STAGE_SIZE;
        ssize_t n = read_some(fd, into_payload ? box->payload + box->have : box->stage, want);
        if (n == 0) {
            if (box->header_have == 0) {
                return WIRE_READ_EOF;
            }
            errno = EPIPE;              /* the worker died in the middle */
            return WIRE_READ_FAILED;
        }
        if (n < 0) {
            return n == -1 ? WIRE_READ_MORE : WIRE_READ_FAILED;
        }
        box->drained = (size_t)n < want;
        if (into_payload) {
            box->have += (uint64_t)n;
        }
        else {
            box->stage_end = (size_t)n;
        }
    }
}

unsigned char *
wire_inbox_take(wire_inbox *box, uint64_t *length, uint32_t *kind, uint32_t *flags)
{
    unsigned char *payload = box->payload;
    *length = box->length;
    *kind = box->kind;
    *flags = box->flags;
    box->payload = NULL;
    box->header_have = 0;
    box->length = box->have = 0;
    return payload;
}

void
wire_inbox_clear(wire_inbox *box)
{
    free(box->payload);
    free(box->stage);
    memset(box, 0, sizeof(*box));
}
