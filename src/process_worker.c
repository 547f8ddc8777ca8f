/* process_worker.c — the loop of a worker process.
 *
 * `_cfutures._process_worker(task_conn, result_conn, shm_conn, initializer,
 * initargs, max_tasks, max_memory)` is the target of the multiprocessing.Process the
 * parent starts.  It reads one task frame, runs it, writes one result
 * frame, in order, until the parent says exit (or its pipe ends: the parent
 * is gone), max_tasks are done, or its resident memory after a task is
 * over max_memory bytes; the last answer then says it leaves.  A task the
 * parent may stop asks for a STARTED frame before it runs.  Big calls and
 * results come and go through shared memory, their memfds over shm_conn
 * (shm.h).  Reads and writes happen with the GIL released; a
 * signal (Ctrl-C reaches the whole process group) interrupts the wait and
 * its handler runs, as in the stdlib's worker.
 *
 * Errors travel as the stdlib's do: an exception raised by the call (any
 * BaseException), or by pickling the result, is sent back wrapped in
 * concurrent.futures.process._ExceptionWithTraceback, so that the parent's
 * copy carries the worker's traceback as its __cause__.  One raised while
 * unpickling the call (SystemExit included) goes back as a CALL_ERROR: the
 * parent fails that future with BrokenProcessPool, as the stdlib would fail
 * its whole pool, and the worker goes on.
 *
 * Under fork the worker inherited the parent's ends of every pool's pipes;
 * the module's after-fork hook closed them before this loop began.
 */
#include "cfutures.h"
#include "pickling.h"
#include "shm.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int
fd_readable(void *arg)
{
    struct pollfd pfd = {*(int *)arg, POLLIN, 0};
    return poll(&pfd, 1, 0) > 0;
}

/* A blocking wait between tasks failed with `errno`: 0 to wait again (a
 * signal arrived and its handler ran), -1 with an exception. */
static int
wait_interrupted(void)
{
    if (errno != EINTR) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (PyErr_CheckSignals() < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
            return -1;
        }
        /* Ctrl-C reaches the whole process group.  Between tasks it is
         * the parent's to act on (it cancels the work or stops this
         * worker): no traceback from every idle worker. */
        PyErr_Clear();
    }
    return 0;
}

/* The worker's end of its task pipe, read in bulk: one read() takes what
 * the parent wrote at once (often several task frames), and the frames are
 * cut from the buffer, a payload used where it lies.  A payload bigger
 * than the buffer is read into a bytes object of its own. */
#define TASK_READER_SIZE (64 * 1024)

typedef struct {
    cf_state *st;
    int fd;
    char *buf;
    size_t at, end;                 /* the bytes read and not yet used */
} task_reader;

/* Is `fd` readable before `due` (monotonic ns)?  1, 0 at `due`, or -1 with
 * errno.  No GIL needed. */
static int
readable_by(int fd, int64_t due)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    int ready = poll(&pfd, 1, cf_poll_ms_until(due));
    return ready < 0 ? -1 : ready;
}

/* Until `need` bytes (at most TASK_READER_SIZE) are buffered, block for
 * more, running signal handlers on EINTR (a KeyboardInterrupt they raise is
 * dropped).  DONE, EOF (end of file with nothing buffered), or FAILED with
 * an exception.  A short spin first: the next task of a busy pool is
 * usually there within microseconds, sooner than the kernel would wake us
 * for it.  While shared memory is kept for reuse, the wait wakes to let
 * go of what went unused (shm_cache_trim). */
static wire_read_status
reader_fill(task_reader *r, size_t need)
{
    if (r->end - r->at >= need) {
        return WIRE_READ_DONE;
    }
    if (TASK_READER_SIZE - r->at < need) {
        memmove(r->buf, r->buf + r->at, r->end - r->at);
        r->end -= r->at;
        r->at = 0;
    }
    while (r->end - r->at < need) {
        ssize_t n = -1;
        int fd = r->fd, ready = 1;
        int64_t trim_due = shm_cache_trim(r->st, cf_monotonic_ns());
        Py_BEGIN_ALLOW_THREADS
        if (!cf_spin(fd_readable, &fd, CF_SPIN_PIPE_NS, CF_FOREVER, CF_SPIN_PIPE_IDLE) &&
            trim_due != 0) {
            ready = readable_by(fd, trim_due);
        }
        if (ready > 0) {
            n = read(fd, r->buf + r->end, TASK_READER_SIZE - r->end);
        }
        Py_END_ALLOW_THREADS
        if (ready == 0) {
            continue;                   /* time to trim */
        }
        if (n > 0) {
            r->end += (size_t)n;
            continue;
        }
        if (n == 0) {
            if (r->end == r->at) {
                return WIRE_READ_EOF;
            }
            PyErr_SetString(PyExc_EOFError, "cfutures worker: task frame cut short");
            return WIRE_READ_FAILED;
        }
        if (wait_interrupted() < 0) {
            return WIRE_READ_FAILED;
        }
    }
    return WIRE_READ_DONE;
}

/* `size` bytes into `out`: first what is buffered, then straight from the
 * pipe.  0, or -1 with an exception. */
static int
reader_take(task_reader *r, char *out, size_t size)
{
    size_t have = r->end - r->at < size ? r->end - r->at : size;
    memcpy(out, r->buf + r->at, have);
    r->at += have;
    size_t done = have;
    for (;;) {
        wire_read_status rc;
        Py_BEGIN_ALLOW_THREADS
        rc = wire_read_all(r->fd, out, size, &done);
        Py_END_ALLOW_THREADS
        if (rc == WIRE_READ_DONE) {
            return 0;
        }
        if (rc == WIRE_READ_EOF) {
            errno = EPIPE;
        }
        if (rc != WIRE_READ_FAILED || wait_interrupted() < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_EOFError, "cfutures worker: task frame cut short");
            }
            return -1;
        }
    }
}

/* The memfd of a SHARED task frame: the parent sent it just before the
 * frame.  The descriptor, or -1 with an exception. */
static int
receive_memfd(int sock)
{
    for (;;) {
        int fd;
        Py_BEGIN_ALLOW_THREADS
        fd = shm_recv_fd(sock, 1);
        Py_END_ALLOW_THREADS
        if (fd >= 0) {
            return fd;
        }
        if (wait_interrupted() < 0) {
            return -1;
        }
    }
}

/* A task frame, as read by read_task. */
typedef struct {
    const char *payload;            /* in the reader's buffer, or in `owner` */
    size_t length;
    PyObject *owner;                /* a big payload's bytes object; NULL */
    uint32_t flags;
    int shm_fd;                     /* the memfd of a shared one; -1 */
} task_frame;

/* The next task frame (valid until the next read_task): 1, or 0 without
 * an exception when the parent says exit or closed the pipe, or -1 with
 * an exception. */
static int
read_task(task_reader *r, int shm_sock, task_frame *task)
{
    task->owner = NULL;
    task->shm_fd = -1;
    wire_read_status rc = reader_fill(r, WIRE_HEADER_SIZE);
    if (rc != WIRE_READ_DONE) {
        return rc == WIRE_READ_EOF ? 0 : -1;
    }
    uint64_t length;
    uint32_t kind;
    wire_unpack_header((unsigned char *)r->buf + r->at, &length, &kind, &task->flags);
    r->at += WIRE_HEADER_SIZE;
    if (kind == WIRE_EXIT) {
        return 0;                   /* shut down */
    }
    if (kind != WIRE_TASK || length > (uint64_t)PY_SSIZE_T_MAX) {
        PyErr_Format(PyExc_RuntimeError, "cfutures worker: bad frame (kind %u)", (unsigned)kind);
        return -1;
    }
    task->length = (size_t)length;
    if (length <= TASK_READER_SIZE) {
        rc = reader_fill(r, (size_t)length);
        if (rc != WIRE_READ_DONE) {
            if (rc == WIRE_READ_EOF) {
                PyErr_SetString(PyExc_EOFError, "cfutures worker: task frame cut short");
            }
            return -1;
        }
        task->payload = r->buf + r->at;
        r->at += (size_t)length;
    }
    else {
        task->owner = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)length);
        if (task->owner == NULL || reader_take(r, PyBytes_AS_STRING(task->owner), task->length) < 0) {
            Py_CLEAR(task->owner);
            return -1;
        }
        task->payload = PyBytes_AS_STRING(task->owner);
    }
    if ((task->flags & WIRE_FLAG_SHARED) && (task->shm_fd = receive_memfd(shm_sock)) < 0) {
        Py_CLEAR(task->owner);
        return -1;
    }
    return 1;
}

/* Write a frame: its memfd first (if any, closed here), then the header
 * and `payload` (released here).  -1 with an exception. */
static int
write_frame(int fd, int shm_sock, uint32_t kind, uint32_t flags, shm_frame *frame)
{
    int rc = 0;
    if (frame->fd >= 0) {
        flags |= WIRE_FLAG_SHARED;
        Py_BEGIN_ALLOW_THREADS
        while ((rc = shm_send_fd(shm_sock, frame->fd, 1)) < 0 && errno == EINTR) {
        }
        Py_END_ALLOW_THREADS
        close(frame->fd);
        frame->fd = -1;
    }
    if (rc == 0) {
        unsigned char header[WIRE_HEADER_SIZE];
        wire_pack_header(header, (uint64_t)frame->payload.len, kind, flags);
        struct iovec iov[2] = {{header, sizeof(header)},
                               {frame->payload.buf, (size_t)frame->payload.len}};
        Py_BEGIN_ALLOW_THREADS
        rc = wire_write_all(fd, iov, 2);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&frame->payload);
    if (rc < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* A frame with no payload (STARTED).  -1 with an exception. */
static int
write_header_frame(int fd, uint32_t kind)
{
    shm_frame frame = {.fd = -1};
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    if (empty == NULL || PyObject_GetBuffer(empty, &frame.payload, PyBUF_SIMPLE) < 0) {
        Py_XDECREF(empty);
        return -1;
    }
    Py_DECREF(empty);
    return write_frame(fd, -1, kind, 0, &frame);
}

/* This process's resident memory in bytes (Linux: /proc/self/statm), or 0
 * if it cannot be read. */
static size_t
resident_bytes(void)
{
    unsigned long size_pages = 0, resident_pages = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm == NULL) {
        return 0;
    }
    int got = fscanf(statm, "%lu %lu", &size_pages, &resident_pages);
    fclose(statm);
    return got == 2 ? (size_t)resident_pages * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* _ExceptionWithTraceback(exc, exc.__traceback__), pickled into `out`.
 * Steals `exc`.  0, or -1 with an exception. */
static int
pickle_exception(cf_state *st, PyObject *exc, shm_frame *out)
{
    PyObject *tb = PyException_GetTraceback(exc);
    PyObject *wrapped = PyObject_CallFunctionObjArgs(st->ExceptionWithTraceback, exc,
                                                     tb ? tb : Py_None, NULL);
    Py_XDECREF(tb);
    Py_DECREF(exc);
    if (wrapped == NULL) {
        return -1;
    }
    int rc = pickling_dumps(st, st->pickle_dumps, wrapped, out);
    Py_DECREF(wrapped);
    return rc;
}

/* Run one task (its memfd, or -1, is closed here); its answer's kind and
 * frame through the arguments.  0, or -1 with an exception. */
static int
run_task(cf_state *st, task_frame *task, uint32_t *kind, shm_frame *answer)
{
    PyObject *call = NULL, *split_fn = NULL, *fn, *args, *kwargs, *result = NULL;
    if (task->flags & WIRE_FLAG_SPLIT) {
        /* The callable, then (args, kwargs): shm.h, split calls (never
         * shared: a big call goes whole). */
        const char *rest;
        size_t rest_length;
        split_fn = pickling_split_callable(st, task->payload, task->length, &rest, &rest_length);
        call = split_fn ? shm_loads(st, rest, rest_length, -1) : NULL;
        fn = split_fn;
        if (call != NULL && !PyArg_ParseTuple(call, "OO", &args, &kwargs)) {
            Py_CLEAR(call);
        }
    }
    else {
        call = shm_loads(st, task->payload, task->length, task->shm_fd);
        task->shm_fd = -1;
        if (call != NULL && !PyArg_ParseTuple(call, "OOO", &fn, &args, &kwargs)) {
            Py_CLEAR(call);
        }
    }
    *kind = WIRE_CALL_ERROR;
    if (call != NULL) {
        *kind = WIRE_ERROR;
        result = PyObject_Call(fn, args, kwargs);
        Py_DECREF(call);
    }
    Py_XDECREF(split_fn);
    if (result != NULL) {
        int rc = pickling_dumps(st, st->pickle_dumps, result, answer);
        Py_DECREF(result);
        if (rc == 0) {
            *kind = WIRE_RESULT;
            return 0;
        }
    }
    /* The call, its unpickling or its result's pickling raised: send that.
     * If even the exception cannot be pickled, send the error doing so. */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (pickle_exception(st, cf_err_take(), answer) == 0) {
            return 0;
        }
    }
    return -1;
}

static PyObject *
process_worker(PyObject *module, PyObject *args)
{
    cf_state *st = cf_state_of_module(module);
    PyObject *task_conn, *result_conn, *shm_conn, *initializer, *initargs;
    Py_ssize_t max_tasks, max_memory;
    if (!PyArg_ParseTuple(args, "OOOOOnn:_process_worker", &task_conn, &result_conn, &shm_conn,
                          &initializer, &initargs, &max_tasks, &max_memory) ||
        cf_load_process_names(st) < 0 || pickling_load(st) < 0) {
        return NULL;
    }
    int task_fd = PyObject_AsFileDescriptor(task_conn);
    int result_fd = task_fd < 0 ? -1 : PyObject_AsFileDescriptor(result_conn);
    int shm_sock = result_fd < 0 ? -1 : PyObject_AsFileDescriptor(shm_conn);
    if (shm_sock < 0) {
        return NULL;
    }
    if (initializer != Py_None) {
        PyObject *argtuple = PySequence_Tuple(initargs);
        PyObject *r = argtuple ? PyObject_Call(initializer, argtuple, NULL) : NULL;
        Py_XDECREF(argtuple);
        if (r == NULL) {
            /* As the stdlib: log, and exit; the parent sees the pool break. */
            PyObject *exc = cf_err_take();
            cf_log_critical(st, "Exception in initializer:", exc);
            Py_XDECREF(exc);
            Py_RETURN_NONE;
        }
        Py_DECREF(r);
    }
    task_reader reader = {st, task_fd, PyMem_Malloc(TASK_READER_SIZE), 0, 0};
    if (reader.buf == NULL) {
        return PyErr_NoMemory();
    }
    int rc = 0;
    Py_ssize_t done = 0;
    for (int leaving = 0; !leaving;) {
        task_frame task;
        rc = read_task(&reader, shm_sock, &task);
        if (rc <= 0) {
            break;                      /* 0: shut down */
        }
        if ((task.flags & WIRE_FLAG_REPORT_START) &&
            write_header_frame(result_fd, WIRE_STARTED) < 0) {
            if (task.shm_fd >= 0) {
                shm_release_unsent(task.shm_fd);
            }
            Py_XDECREF(task.owner);
            rc = -1;
            break;
        }
        uint32_t kind;
        shm_frame answer;
        rc = run_task(st, &task, &kind, &answer);
        Py_XDECREF(task.owner);
        if (rc < 0) {
            break;
        }
        done++;
        leaving = (max_tasks != 0 && done == max_tasks) ||
                  (max_memory != 0 && resident_bytes() > (size_t)max_memory);
        rc = write_frame(result_fd, shm_sock, kind, leaving ? WIRE_FLAG_LEAVING : 0, &answer);
        if (rc < 0) {
            break;
        }
    }
    PyMem_Free(reader.buf);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef worker_functions[] = {
    {"_process_worker", process_worker, METH_VARARGS,
     "Internal: the loop of a ProcessPoolExecutor worker process."},
    {NULL, NULL, 0, NULL},
};

int
process_worker_module_init(PyObject *module, cf_state *st)
{
    (void)st;
    return PyModule_AddFunctions(module, worker_functions);
}
