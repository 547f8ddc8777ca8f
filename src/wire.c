/* wire.c — frames on pipes: packing headers, whole blocking writes and reads
 * for the worker, incremental non-blocking reads for the parent.
 *
 * Nothing here touches Python objects, so all of it runs without the GIL.
 */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void
wire_pack_header(unsigned char header[WIRE_HEADER_SIZE], size_t length, uint32_t kind)
{
    uint32_t len = (uint32_t)length;
    for (int i = 0; i < 4; i++) {
        header[i] = (unsigned char)(len >> (8 * i));
        header[4 + i] = (unsigned char)(kind >> (8 * i));
    }
}

void
wire_unpack_header(const unsigned char header[WIRE_HEADER_SIZE], size_t *length, uint32_t *kind)
{
    uint32_t len = 0, k = 0;
    for (int i = 0; i < 4; i++) {
        len |= (uint32_t)header[i] << (8 * i);
        k |= (uint32_t)header[4 + i] << (8 * i);
    }
    *length = len;
    *kind = k;
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

int
wire_read_all(int fd, void *buf, size_t size, size_t *done)
{
    while (*done < size) {
        ssize_t n = read(fd, (char *)buf + *done, size - *done);
        if (n < 0) {
            return -1;              /* EINTR included: the caller decides */
        }
        if (n == 0) {
            if (*done == 0) {
                return 1;
            }
            errno = EPIPE;          /* the writer died in the middle of a frame */
            return -1;
        }
        *done += (size_t)n;
    }
    return 0;
}

/* One non-blocking read: bytes read (> 0), 0 at end of file, -1 when
 * nothing is there yet, -2 on error (errno).  EINTR is retried. */
static ssize_t
read_some(int fd, void *buf, size_t size)
{
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

int
wire_inbox_read(wire_inbox *box, int fd)
{
    for (;;) {
        int in_header = box->header_have < WIRE_HEADER_SIZE;
        if (!in_header && box->have == box->length) {
            return 1;
        }
        ssize_t n = in_header ? read_some(fd, box->header + box->header_have,
                                          WIRE_HEADER_SIZE - box->header_have)
                              : read_some(fd, box->payload + box->have, box->length - box->have);
        if (n <= 0) {
            return n == 0 ? 2 : n == -1 ? 0 : -1;
        }
        if (!in_header) {
            box->have += (size_t)n;
            continue;
        }
        box->header_have += (size_t)n;
        if (box->header_have == WIRE_HEADER_SIZE) {
            wire_unpack_header(box->header, &box->length, &box->kind);
            box->have = 0;
            box->payload = malloc(box->length > 0 ? box->length : 1);
            if (box->payload == NULL) {
                errno = ENOMEM;
                return -1;
            }
        }
    }
}

unsigned char *
wire_inbox_take(wire_inbox *box, size_t *length, uint32_t *kind)
{
    unsigned char *payload = box->payload;
    *length = box->length;
    *kind = box->kind;
    box->payload = NULL;
    box->header_have = 0;
    box->length = box->have = 0;
    return payload;
}

void
wire_inbox_clear(wire_inbox *box)
{
    free(box->payload);
    memset(box, 0, sizeof(*box));
}
