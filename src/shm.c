/* shm.c — big payloads through anonymous shared memory (see shm.h): the
 * segments (memfds) a frame's pickle and out-of-band buffers go into, the
 * caches that reuse them, the mapping object the receiver unpickles over,
 * and the descriptor passing.  Which pickler makes the pickle and sets the
 * buffers aside is pickling.c's.
 */
#include "shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_INLINE UINT64_MAX
#define SHM_TABLE_HEAD 3            /* count, pickle_at, pickle_length */
#define SHM_ALIGN 64                /* each piece starts on a cache line */

/* A segment begins with this, shared by the sender and the receiver; the
 * pieces follow it.  `busy` is 1 from the moment the sender fills the
 * segment until the receiver's objects over it are gone (or the frame was
 * never sent): only then may the sender fill it again. */
typedef struct {
    _Atomic uint32_t busy;
} shm_header;
#define SHM_HEADER_SIZE SHM_ALIGN

/* ---- the caches ------------------------------------------------------------- */

/* Filling a fresh memfd costs more than copying the bytes: the kernel
 * allocates every page and frees them all when the receiver is done; and
 * mapping one, its pages faulted in one by one, costs as much again (on
 * this 2-core machine 200 MB went at 0.7 GiB/s that way, against 2-4 GiB/s
 * copied into pages that exist and are mapped).  So each process keeps,
 * mapped, the segments it sent (and fills one again once its receiver let
 * go of it: its header says so) and the segments it received (and maps one
 * no more when it comes again).  At most SHM_CACHE_SLOTS of each and
 * SHM_CACHE_BYTES; a process pool's end lets them go (shm_cache_clear).
 * A segment unused for SHM_IDLE_NS goes too (shm_cache_trim): transfers
 * back to back reuse it, and an idle pool soon keeps no shared memory, as
 * the stdlib's keeps nothing (malloc gives big blocks back when freed). */
#define SHM_CACHE_SLOTS 4
#define SHM_CACHE_BYTES ((size_t)256 << 20)
#define SHM_IDLE_NS ((int64_t)1000 * 1000 * 1000)
#define SHM_SEGMENT_ROUND ((size_t)1 << 20)

/* One segment this process maps, whole. */
typedef struct {
    char *addr;                     /* NULL: the slot is empty */
    size_t size;
    int fd;                         /* sent: ours, passed on with each frame; received: -1 */
    dev_t dev;                      /* received: which memfd it is */
    ino_t ino;
    int held;                       /* sent: a thread fills it, GIL released;
                                     * received: a _SharedMapping over it lives */
    int cleared;                    /* the cache was cleared while it was held:
                                     * drop it when it is let go */
    int64_t used_at;                /* filled, received, or let go (monotonic ns) */
} shm_region;

typedef struct {
    shm_region slots[SHM_CACHE_SLOTS];
} shm_regions;

struct shm_cache {
    shm_regions sent, received;
    unsigned generation;            /* bumped in a fork child: mappings made
                                     * before belong to no cache there */
};

static void
region_drop(shm_region *r)
{
    munmap(r->addr, r->size);
    if (r->fd >= 0) {
        close(r->fd);
    }
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

/* Drop every region not held, and the held ones when they are let go
 * (`all`: forget the held ones now, without unmapping them: what holds them
 * unmaps them). */
static void
regions_clear(shm_regions *regions, int all)
{
    for (int k = 0; k < SHM_CACHE_SLOTS; k++) {
        shm_region *r = &regions->slots[k];
        if (r->addr != NULL && !r->held) {
            region_drop(r);
        }
        else if (r->addr != NULL && !all) {
            r->cleared = 1;
        }
        else if (r->addr != NULL) {
            if (r->fd >= 0) {
                close(r->fd);
            }
            memset(r, 0, sizeof(*r));
            r->fd = -1;
        }
    }
}

/* Drop the regions not held and unused since `now - SHM_IDLE_NS`; lower
 * `*due` to when the next of those left may go (a held one: checked again
 * a whole SHM_IDLE_NS later, as it may be let go any time before). */
static void
regions_trim(shm_regions *regions, int64_t now, int64_t *due)
{
    for (int k = 0; k < SHM_CACHE_SLOTS; k++) {
        shm_region *r = &regions->slots[k];
        if (r->addr == NULL) {
            continue;
        }
        if (!r->held && now - r->used_at >= SHM_IDLE_NS) {
            region_drop(r);
            continue;
        }
        *due = cf_sooner(*due, r->held ? now + SHM_IDLE_NS : r->used_at + SHM_IDLE_NS);
    }
}

/* An empty slot for a region of `size`, made by dropping the least
 * recently used ones not held (a process that still maps one keeps its
 * memory alive until it lets go), or NULL if it cannot be cached. */
static shm_region *
regions_make_room(shm_regions *regions, size_t size)
{
    if (size > SHM_CACHE_BYTES) {
        return NULL;
    }
    for (;;) {
        size_t kept = 0;
        shm_region *empty = NULL, *oldest = NULL;
        for (int k = 0; k < SHM_CACHE_SLOTS; k++) {
            shm_region *r = &regions->slots[k];
            if (r->addr == NULL) {
                empty = empty ? empty : r;
                continue;
            }
            kept += r->size;
            if (!r->held && (oldest == NULL || r->used_at < oldest->used_at)) {
                oldest = r;
            }
        }
        if (empty != NULL && kept + size <= SHM_CACHE_BYTES) {
            return empty;
        }
        if (oldest == NULL) {
            return NULL;            /* all held */
        }
        region_drop(oldest);
    }
}

/* ---- the mapping ---------------------------------------------------------- */

/* A segment as the receiver sees it.  Its buffer is what the unpickled
 * objects view; when the last of them goes, the segment is the sender's to
 * fill again, and its mapping stays in the received cache (or goes, if it
 * is not there). */
typedef struct {
    PyObject_HEAD
    char *addr;
    size_t size;                    /* what the frame uses */
    size_t mapped;                  /* what is mapped (all of the segment) */
    pid_t pid;                      /* the process that received it */
    shm_region *region;             /* its slot in the received cache, or NULL */
    unsigned generation;            /* the cache's, when it was received */
} SharedMappingObject;

static int
mapping_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
    SharedMappingObject *m = (SharedMappingObject *)self;
    return PyBuffer_FillInfo(view, self, m->addr, (Py_ssize_t)m->size, 0, flags);
}

static void
mapping_dealloc(PyObject *self)
{
    SharedMappingObject *m = (SharedMappingObject *)self;
    PyTypeObject *type = Py_TYPE(self);
    struct shm_cache *cache = ((cf_state *)PyType_GetModuleState(type))->shm_cache;
    if (m->addr != NULL) {
        /* Nothing views it any more: the sender may fill it again -- unless
         * this is a fork child's copy, which was never the receiver. */
        if (m->pid == getpid()) {
            atomic_store_explicit(&((shm_header *)m->addr)->busy, 0, memory_order_release);
        }
        if (m->region != NULL && cache != NULL && m->generation == cache->generation) {
            m->region->held = 0;
            m->region->used_at = cf_monotonic_ns();
            if (m->region->cleared) {
                region_drop(m->region);
            }
        }
        else {
            munmap(m->addr, m->mapped);
        }
    }
    type->tp_free(self);
    Py_DECREF(type);
}

static PyType_Slot mapping_slots[] = {
    {Py_bf_getbuffer, (void *)mapping_getbuffer},
    {Py_tp_dealloc, (void *)mapping_dealloc},
    {Py_tp_doc, (void *)"Shared memory a call or a result arrived in (internal)."},
    {0, NULL},
};

static PyType_Spec mapping_spec = {
    .name = "cfutures._cfutures._SharedMapping",
    .basicsize = sizeof(SharedMappingObject),
    .flags = Py_TPFLAGS_DEFAULT,
    .slots = mapping_slots,
};

/* The received segment `fd`: its cached mapping if it came before, else a
 * new one (cached if there is room).  Sets m's addr, mapped and region; 0,
 * or -1 with an exception. */
static int
mapping_attach(struct shm_cache *cache, int fd, size_t size, SharedMappingObject *m)
{
    struct stat info;
    if (fstat(fd, &info) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if ((uint64_t)info.st_size < size) {
        /* Touching a page past its end would be SIGBUS. */
        PyErr_SetString(PyExc_ValueError, "cfutures: shared memory shorter than its frame says");
        return -1;
    }
    shm_region *r = NULL;
    for (int k = 0; k < SHM_CACHE_SLOTS; k++) {
        shm_region *c = &cache->received.slots[k];
        if (c->addr != NULL && !c->held && c->ino == info.st_ino && c->dev == info.st_dev) {
            r = c;
        }
    }
    if (r == NULL) {
        /* Not populated: what the receiver never reads costs nothing. */
        size_t whole = (size_t)info.st_size;
        char *addr = mmap(NULL, whole, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (addr == MAP_FAILED) {
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        r = regions_make_room(&cache->received, whole);
        if (r == NULL) {
            m->addr = addr;         /* not cached: the mapping object unmaps it */
            m->mapped = whole;
            return 0;
        }
        *r = (shm_region){.addr = addr, .size = whole, .fd = -1, .dev = info.st_dev,
                          .ino = info.st_ino};
    }
    r->held = 1;
    r->used_at = cf_monotonic_ns();
    m->addr = r->addr;
    m->mapped = r->size;
    m->region = r;
    return 0;
}

/* The mapping of received segment `fd`, of which a frame uses `size`
 * bytes.  New reference, or NULL with an exception. */
static PyObject *
mapping_new(cf_state *st, int fd, size_t size)
{
    SharedMappingObject *m = PyObject_New(SharedMappingObject, st->SharedMappingType);
    if (m == NULL) {
        return NULL;
    }
    m->addr = NULL;
    m->size = size;
    m->region = NULL;
    m->pid = getpid();
    m->generation = st->shm_cache->generation;
    if (mapping_attach(st->shm_cache, fd, size, m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return (PyObject *)m;
}

/* ---- sending ---------------------------------------------------------- */

static size_t
align_up(size_t n)
{
    return (n + SHM_ALIGN - 1) & ~(size_t)(SHM_ALIGN - 1);
}

static void
put_u64(unsigned char *at, uint64_t value)
{
    for (int i = 0; i < 8; i++) {
        at[i] = (unsigned char)(value >> (8 * i));
    }
}

static uint64_t
get_u64(const unsigned char *at)
{
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) {
        value = (value << 8) | at[i];
    }
    return value;
}


/* Write `size` bytes at `offset` of `fd`, all of them.  No GIL needed. */
static int
pwrite_all(int fd, const char *data, size_t size, size_t offset)
{
    while (size > 0) {
        ssize_t n = pwrite(fd, data, size, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        data += n;
        offset += (size_t)n;
        size -= (size_t)n;
    }
    return 0;
}

/* One piece of a shared frame: where its bytes are now, where they go. */
typedef struct {
    const char *data;
    size_t size, offset;
} shm_piece;

/* ---- the send cache --------------------------------------------------------- */

static int
segment_free_for(shm_region *r, size_t size)
{
    return r->addr != NULL && !r->held && r->size >= size &&
           atomic_load_explicit(&((shm_header *)r->addr)->busy, memory_order_acquire) == 0;
}

/* The sent segment that fits `size` best and nobody holds, or NULL. */
static shm_region *
segment_find(struct shm_cache *cache, size_t size)
{
    shm_region *best = NULL;
    for (int k = 0; k < SHM_CACHE_SLOTS; k++) {
        shm_region *r = &cache->sent.slots[k];
        if (segment_free_for(r, size) && (best == NULL || r->size < best->size)) {
            best = r;
        }
    }
    return best;
}

/* A new segment of at least `size` bytes, mapped, into `r`.  0, or -1
 * with an exception. */
static int
segment_create(shm_region *r, size_t size)
{
    size_t capacity = (size + SHM_SEGMENT_ROUND - 1) & ~(SHM_SEGMENT_ROUND - 1);
    int fd = memfd_create("cfutures", MFD_CLOEXEC);
    char *addr = MAP_FAILED;
    if (fd >= 0 && ftruncate(fd, (off_t)capacity) == 0) {
        addr = mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    if (addr == MAP_FAILED) {
        PyErr_SetFromErrno(PyExc_OSError);
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *r = (shm_region){.addr = addr, .size = capacity, .fd = fd};
    return 0;
}

/* Copy `pieces` into a segment of at least `total` bytes -- a cached one
 * if one is free -- and mark it busy.  The descriptor for the frame (the
 * caller's to send and close), or -1 with an exception. */
static int
segment_fill(cf_state *st, const shm_piece *pieces, Py_ssize_t npieces, size_t total)
{
    struct shm_cache *cache = st->shm_cache;
    shm_region one_off, *r = segment_find(cache, total);
    int fresh = r == NULL;
    if (fresh) {
        size_t capacity = (total + SHM_SEGMENT_ROUND - 1) & ~(SHM_SEGMENT_ROUND - 1);
        r = regions_make_room(&cache->sent, capacity);
        r = r != NULL ? r : &one_off;
        if (segment_create(r, total) < 0) {
            return -1;
        }
    }
    atomic_store_explicit(&((shm_header *)r->addr)->busy, 1, memory_order_relaxed);
    r->held = 1;
    r->used_at = cf_monotonic_ns();
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; !failed && k < npieces; k++) {
        /* Fresh pages: pwrite allocates them without zeroing them first. */
        if (fresh) {
            failed = pwrite_all(r->fd, pieces[k].data, pieces[k].size, pieces[k].offset) < 0;
        }
        else {
            memcpy(r->addr + pieces[k].offset, pieces[k].data, pieces[k].size);
        }
    }
    Py_END_ALLOW_THREADS
    r->held = 0;
    int fd = failed ? -1 : fcntl(r->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        atomic_store_explicit(&((shm_header *)r->addr)->busy, 0, memory_order_release);
    }
    if (r == &one_off || r->cleared) {
        region_drop(r);             /* not kept: the frame's descriptor holds it */
    }
    return fd;
}

void
shm_cache_clear(cf_state *st)
{
    if (st->shm_cache != NULL) {
        regions_clear(&st->shm_cache->sent, 0);
        regions_clear(&st->shm_cache->received, 0);
    }
}

int64_t
shm_cache_trim(cf_state *st, int64_t now)
{
    int64_t due = 0;
    if (st->shm_cache != NULL) {
        regions_trim(&st->shm_cache->sent, now, &due);
        regions_trim(&st->shm_cache->received, now, &due);
    }
    return due;
}

void
shm_module_free(cf_state *st)
{
    shm_cache_clear(st);            /* nothing is held: no object of the module lives */
    PyMem_Free(st->shm_cache);
    st->shm_cache = NULL;
}

void
shm_after_fork_child(cf_state *st)
{
    /* The parent's segments are its own: this copy only lets go of them.
     * (A thread that was filling one did not come along; mappings that
     * objects here still use are unmapped by those objects.) */
    struct shm_cache *cache = st->shm_cache;
    if (cache != NULL) {
        for (int k = 0; k < SHM_CACHE_SLOTS; k++) {
            cache->sent.slots[k].held = 0;
        }
        regions_clear(&cache->sent, 1);
        regions_clear(&cache->received, 1);
        cache->generation++;
    }
}

void
shm_release_unsent(int fd)
{
    /* Its receiver will never clear the header: do it here. */
    uint32_t idle = 0;
    (void)pwrite_all(fd, (const char *)&idle, sizeof(idle), 0);
    close(fd);
}

/* The pieces one after the other in `dest`. */
void
shm_pieces_copy(const shm_pieces *p, unsigned char *dest)
{
    for (Py_ssize_t k = 0; k < p->count; k++) {
        memcpy(dest, p->views[k].buf, (size_t)p->views[k].len);
        dest += p->views[k].len;
    }
}

int
shm_pack(cf_state *st, const shm_pieces *pickle, PyObject *buffers, shm_frame *out)
{
    Py_ssize_t count = buffers == NULL ? 0 : PyList_GET_SIZE(buffers);
    int pickle_shared = pickle->length >= SHM_PICKLE_MIN;
    size_t table_size = 8 * (SHM_TABLE_HEAD + 2 * (size_t)count);
    size_t payload_size = table_size + (pickle_shared ? 0 : pickle->length);
    PyObject *table = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)payload_size);
    shm_piece *pieces = PyMem_Calloc((size_t)(count + pickle->count + 1), sizeof(shm_piece));
    int rc = -1;
    if (table == NULL || pieces == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    unsigned char *at = (unsigned char *)PyBytes_AS_STRING(table);
    size_t total = SHM_HEADER_SIZE;
    Py_ssize_t npieces = 0;
    put_u64(at, (uint64_t)count);
    put_u64(at + 16, (uint64_t)pickle->length);
    if (pickle_shared) {
        put_u64(at + 8, total);
        for (Py_ssize_t k = 0; k < pickle->count; k++) {
            const Py_buffer *v = &pickle->views[k];
            pieces[npieces++] = (shm_piece){v->buf, (size_t)v->len, total};
            total += (size_t)v->len;
        }
        total = align_up(total);
    }
    else {
        put_u64(at + 8, SHM_INLINE);
        shm_pieces_copy(pickle, at + table_size);
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        /* Contiguous (the pickler refuses others); the list keeps it. */
        const Py_buffer *view = PyPickleBuffer_GetBuffer(PyList_GET_ITEM(buffers, k));
        if (view == NULL) {
            goto done;
        }
        put_u64(at + 8 * (SHM_TABLE_HEAD + 2 * (size_t)k), (uint64_t)total);
        put_u64(at + 8 * (SHM_TABLE_HEAD + 2 * (size_t)k + 1), (uint64_t)view->len);
        pieces[npieces++] = (shm_piece){view->buf, (size_t)view->len, total};
        total = align_up(total + (size_t)view->len);
    }
    out->fd = segment_fill(st, pieces, npieces, total);
    if (out->fd >= 0 && PyObject_GetBuffer(table, &out->payload, PyBUF_SIMPLE) == 0) {
        rc = 0;
    }
    else if (out->fd >= 0) {
        shm_release_unsent(out->fd);
        out->fd = -1;
    }
done:
    PyMem_Free(pieces);
    Py_XDECREF(table);
    return rc;
}

/* ---- receiving --------------------------------------------------------- */

static PyObject *
bad_table(void)
{
    PyErr_SetString(PyExc_ValueError, "cfutures: malformed shared-memory frame");
    return NULL;
}

/* loads(pickle, buffers=buffers).  Steals nothing. */
static PyObject *
loads_with(cf_state *st, PyObject *pickle, PyObject *buffers)
{
    PyObject *argv[] = {pickle, buffers};
    return PyObject_Vectorcall(st->pickle_loads, argv, 1, st->kwnames_buffers);
}

/* Unpickle a SHARED frame over the mapping of `fd` (not closed here);
 * `*mapped` says whether the mapping was made (it then frees the segment
 * when it goes). */
static PyObject *
loads_shared(cf_state *st, const unsigned char *payload, size_t length, int fd, int *mapped)
{
    *mapped = 0;
    if (length < 8 * SHM_TABLE_HEAD) {
        return bad_table();
    }
    uint64_t count = get_u64(payload), pickle_at = get_u64(payload + 8);
    uint64_t pickle_len = get_u64(payload + 16);
    if (count > (length / 8 - SHM_TABLE_HEAD) / 2) {
        return bad_table();
    }
    size_t table_size = 8 * (SHM_TABLE_HEAD + 2 * (size_t)count);
    /* The mapping must hold the header and every piece: its size is where
     * the last ends. */
    uint64_t total = pickle_at == SHM_INLINE ? SHM_HEADER_SIZE : pickle_at + pickle_len;
    for (uint64_t k = 0; k < count; k++) {
        const unsigned char *entry = payload + 8 * (SHM_TABLE_HEAD + 2 * k);
        uint64_t end = get_u64(entry) + get_u64(entry + 8);
        total = end > total ? end : total;
    }
    if ((pickle_at == SHM_INLINE ? pickle_len != length - table_size : length != table_size) ||
        total > (uint64_t)PY_SSIZE_T_MAX) {
        return bad_table();
    }
    PyObject *mapping = mapping_new(st, fd, (size_t)total);
    *mapped = mapping != NULL;
    PyObject *whole = mapping ? PyMemoryView_FromObject(mapping) : NULL;
    PyObject *buffers = whole ? PyList_New((Py_ssize_t)count) : NULL;
    PyObject *pickle = NULL, *value = NULL;
    for (uint64_t k = 0; buffers != NULL && k < count; k++) {
        const unsigned char *entry = payload + 8 * (SHM_TABLE_HEAD + 2 * k);
        Py_ssize_t at = (Py_ssize_t)get_u64(entry), len = (Py_ssize_t)get_u64(entry + 8);
        /* A PickleBuffer, as was sent: what views it (a NumPy array) keeps
         * the mapping; what receives it bare can pickle it again. */
        PyObject *slice = PySequence_GetSlice(whole, at, at + len);
        PyObject *piece = slice ? PyPickleBuffer_FromObject(slice) : NULL;
        Py_XDECREF(slice);
        if (piece == NULL) {
            Py_CLEAR(buffers);
            break;
        }
        PyList_SET_ITEM(buffers, (Py_ssize_t)k, piece);
    }
    if (buffers != NULL) {
        pickle = pickle_at == SHM_INLINE
                     ? PyMemoryView_FromMemory((char *)payload + table_size,
                                               (Py_ssize_t)pickle_len, PyBUF_READ)
                     : PySequence_GetSlice(whole, (Py_ssize_t)pickle_at,
                                           (Py_ssize_t)(pickle_at + pickle_len));
    }
    if (pickle != NULL) {
        value = loads_with(st, pickle, buffers);
    }
    Py_XDECREF(pickle);
    Py_XDECREF(buffers);
    Py_XDECREF(whole);
    Py_XDECREF(mapping);
    return value;
}

PyObject *
shm_loads(cf_state *st, const void *payload, size_t length, int fd)
{
    PyObject *value;
    if (fd < 0) {
        PyObject *view = PyMemoryView_FromMemory((char *)payload, (Py_ssize_t)length, PyBUF_READ);
        value = view ? PyObject_CallOneArg(st->pickle_loads, view) : NULL;
        Py_XDECREF(view);
        return value;
    }
    int mapped;
    value = loads_shared(st, payload, length, fd, &mapped);
    if (mapped) {
        close(fd);                  /* the mapping stays, and frees the segment when it goes */
    }
    else {
        shm_release_unsent(fd);
    }
    return value;
}

/* ---- passing descriptors ------------------------------------------------ */

int
shm_socketpair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}

int
shm_send_fd(int sock, int fd, int wait)
{
    char byte = 'F';
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.space, .msg_controllen = sizeof(control.space)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    return sendmsg(sock, &msg, MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT)) == 1 ? 0 : -1;
}

int
shm_recv_fd(int sock, int wait)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.space, .msg_controllen = sizeof(control.space)};
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT));
    if (n < 0) {
        return -1;
    }
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (n == 0 || c == NULL || c->cmsg_type != SCM_RIGHTS ||
        c->cmsg_len != CMSG_LEN(sizeof(int)) || (msg.msg_flags & MSG_CTRUNC)) {
        errno = n == 0 ? EPIPE : EPROTO;
        return -1;
    }
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(int));
    return fd;
}

/* ---- module --------------------------------------------------------------- */

int
shm_module_init(PyObject *module, cf_state *st)
{
    st->shm_cache = PyMem_Calloc(1, sizeof(struct shm_cache));
    if (st->shm_cache == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (int k = 0; k < SHM_CACHE_SLOTS; k++) {
        st->shm_cache->sent.slots[k].fd = -1;
        st->shm_cache->received.slots[k].fd = -1;
    }
    st->SharedMappingType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &mapping_spec, NULL);
    st->pickle_protocol = PyLong_FromLong(5);
    st->kwnames_buffer_callback = Py_BuildValue("(s)", "buffer_callback");
    st->kwnames_buffers = Py_BuildValue("(s)", "buffers");
    if (st->SharedMappingType != NULL) {
        st->SharedMappingType->tp_new = NULL;     /* made here only */
    }
    if (st->SharedMappingType == NULL || st->pickle_protocol == NULL ||
        st->kwnames_buffer_callback == NULL || st->kwnames_buffers == NULL) {
        return -1;
    }
    return 0;
}
