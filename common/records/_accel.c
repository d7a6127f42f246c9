/* The record-stream codec in C: raftka.common.records._accel.
 *
 * A line-for-line twin of pycodec.py, which is the specification: the same checks in the same
 * order, the same results and the same error messages with the same byte positions (the
 * tests hold both to it, including a hypothesis test on random and damaged streams). Change
 * both together.
 *
 * validate_records never builds a Python object per record and releases the GIL for large
 * streams; decode_records builds the tuples the decoder wraps; encode_record(s) append records
 * to a bytearray (the producer's batch).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define INT32_MAX_ 2147483647LL
#define NO_TIMESTAMP (-1LL)
#define MSG_SIZE 512
#define NOGIL_BYTES (64 * 1024)

static PyObject *CorruptRecordError = NULL;

/* ------------------------------------------------------------------ reading */

typedef struct {
    const unsigned char *data;
    long long end;
    long long position; /* where data starts, for messages */
    long long index;    /* the record being read */
    int failed;         /* 1: msg holds a CorruptRecordError message; 2: a Python error is set */
    char msg[MSG_SIZE];
} Walker;

static int fail(Walker *w, const char *fmt, ...) {
    int n = snprintf(w->msg, MSG_SIZE, "record %lld: ", w->index);
    va_list args;
    va_start(args, fmt);
    vsnprintf(w->msg + n, MSG_SIZE - (size_t)n, fmt, args);
    va_end(args);
    w->failed = 1;
    return -1;
}

/* Reads an unsigned base-128 number at pos (bounded by limit); *overflow is set when bits
 * beyond 64 were given. Returns the position after it, or -1 on failure. */
static long long read_unsigned(Walker *w, long long pos, long long limit, int max_bytes,
                               const char *kind, uint64_t *out, int *overflow) {
    uint64_t raw = 0;
    int shift = 0;
    long long i = pos;
    *overflow = 0;
    for (;;) {
        if (i >= limit) {
            return fail(w, "truncated %s at byte %lld: the record ends inside it", kind,
                        w->position + pos);
        }
        if (i - pos >= max_bytes) {
            return fail(w, "%s at byte %lld is longer than %d bytes", kind, w->position + pos,
                        max_bytes);
        }
        unsigned char b = w->data[i];
        uint64_t bits = (uint64_t)(b & 0x7F);
        if (shift < 64) {
            if (shift > 57 && (bits >> (64 - shift)) != 0) {
                *overflow = 1;
            }
            raw |= bits << shift;
        } else if (bits) {
            *overflow = 1;
        }
        i++;
        if (b < 0x80) {
            *out = raw;
            return i;
        }
        shift += 7;
    }
}

static long long read_varint(Walker *w, long long pos, long long limit, long long *value) {
    if (pos < limit) {
        unsigned char b = w->data[pos];
        if (b < 0x80) {
            *value = (long long)(b >> 1) ^ -(long long)(b & 1);
            return pos + 1;
        }
    }
    uint64_t raw;
    int overflow;
    long long next = read_unsigned(w, pos, limit, 5, "varint", &raw, &overflow);
    if (next < 0) {
        return -1;
    }
    if (overflow || raw > 0xFFFFFFFFULL) {
        return fail(w, "varint at byte %lld does not fit in 32 bits", w->position + pos);
    }
    *value = (long long)(raw >> 1) ^ -(long long)(raw & 1);
    return next;
}

static long long read_varlong(Walker *w, long long pos, long long limit, long long *value) {
    if (pos < limit) {
        unsigned char b = w->data[pos];
        if (b < 0x80) {
            *value = (long long)(b >> 1) ^ -(long long)(b & 1);
            return pos + 1;
        }
    }
    uint64_t raw;
    int overflow;
    long long next = read_unsigned(w, pos, limit, 10, "varlong", &raw, &overflow);
    if (next < 0) {
        return -1;
    }
    if (overflow) {
        return fail(w, "varlong at byte %lld does not fit in 64 bits", w->position + pos);
    }
    *value = (long long)(raw >> 1) ^ -(long long)(raw & 1);
    return next;
}

/* A length-prefixed field: sets *start and *stop (-1 for null). Returns 0, or -1. */
static int read_field(Walker *w, long long pos, long long limit, const char *name, int nullable,
                      long long *start, long long *stop) {
    long long at = w->position + pos;
    long long length;
    pos = read_varint(w, pos, limit, &length);
    if (pos < 0) {
        return -1;
    }
    if (length < 0) {
        if (length == -1 && nullable) {
            *start = pos;
            *stop = -1;
            return 0;
        }
        return fail(w, "%s length %lld at byte %lld is %s", name, length, at,
                    nullable ? "below -1" : "negative (a header key may not be null)");
    }
    long long end = pos + length;
    if (end > limit) {
        return fail(w, "%s of %lld bytes at byte %lld overruns the record, which ends at byte %lld",
                    name, length, at, w->position + limit);
    }
    *start = pos;
    *stop = end;
    return 0;
}

/* Strict UTF-8 as Python's decoder accepts it: no overlong forms, no surrogates, at most
 * U+10FFFF. */
static int valid_utf8(const unsigned char *s, long long n) {
    long long i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            if (i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (i + 2 >= n) return 0;
            unsigned char c1 = s[i + 1], c2 = s[i + 2];
            if ((c1 & 0xC0) != 0x80 || (c2 & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && c1 < 0xA0) return 0; /* overlong */
            if (c == 0xED && c1 > 0x9F) return 0; /* surrogate */
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (i + 3 >= n) return 0;
            unsigned char c1 = s[i + 1], c2 = s[i + 2], c3 = s[i + 3];
            if ((c1 & 0xC0) != 0x80 || (c2 & 0xC0) != 0x80 || (c3 & 0xC0) != 0x80) return 0;
            if (c == 0xF0 && c1 < 0x90) return 0; /* overlong */
            if (c == 0xF4 && c1 > 0x8F) return 0; /* above U+10FFFF */
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ walking */

/* How decode_records_as makes each record: an instance of the tuple subclass cls holding
 * (*prefix, base_offset + offset delta, timestamp, key, value, headers, *suffix), where the
 * timestamp is stamp (not None) or base_timestamp + timestamp delta; records whose offset
 * delta is below start are walked (and checked) but not made. */
typedef struct {
    PyTypeObject *cls;
    PyObject *prefix;
    PyObject *suffix;
    long long base_offset;
    long long base_timestamp;
    PyObject *stamp;
    long long start;
} Shape;

/* a + b as a Python int, exact beyond int64 too (as Python's sum would be). */
static PyObject *sum_of(long long a, long long b) {
    long long r;
    if (!__builtin_add_overflow(a, b, &r)) return PyLong_FromLongLong(r);
    PyObject *x = PyLong_FromLongLong(a);
    PyObject *y = x ? PyLong_FromLongLong(b) : NULL;
    PyObject *total = y ? PyNumber_Add(x, y) : NULL;
    Py_XDECREF(x);
    Py_XDECREF(y);
    return total;
}

/* The record as shape says; steals key, value and headers (even when it fails). */
static PyObject *shaped(const Shape *shape, long long offset_delta, long long timestamp_delta,
                        PyObject *key, PyObject *value, PyObject *headers) {
    const Py_ssize_t np = PyTuple_GET_SIZE(shape->prefix);
    const Py_ssize_t ns = PyTuple_GET_SIZE(shape->suffix);
    PyObject *offset = sum_of(shape->base_offset, offset_delta);
    PyObject *timestamp = NULL;
    if (offset != NULL) {
        if (shape->stamp != Py_None) {
            timestamp = shape->stamp;
            Py_INCREF(timestamp);
        } else {
            timestamp = sum_of(shape->base_timestamp, timestamp_delta);
        }
    }
    PyObject *record = timestamp ? shape->cls->tp_alloc(shape->cls, np + 5 + ns) : NULL;
    if (record == NULL) {
        Py_XDECREF(offset);
        Py_XDECREF(timestamp);
        Py_DECREF(key);
        Py_DECREF(value);
        Py_DECREF(headers);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < np; i++) {
        PyObject *item = PyTuple_GET_ITEM(shape->prefix, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(record, i, item);
    }
    PyTuple_SET_ITEM(record, np, offset);
    PyTuple_SET_ITEM(record, np + 1, timestamp);
    PyTuple_SET_ITEM(record, np + 2, key);
    PyTuple_SET_ITEM(record, np + 3, value);
    PyTuple_SET_ITEM(record, np + 4, headers);
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *item = PyTuple_GET_ITEM(shape->suffix, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(record, np + 5 + i, item);
    }
    return record;
}

static PyObject *bytes_or_none(Walker *w, long long start, long long stop) {
    if (stop < 0) {
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize((const char *)w->data + start, (Py_ssize_t)(stop - start));
}

/* Walks count records. In decode mode (out != NULL) appends tuples (or, with a shape, the
 * records it describes) to the list out and skips the offset and timestamp checks. Returns 0,
 * or -1 with w->failed set. */
static int walk(Walker *w, long long count, long long base_timestamp, PyObject *out,
                const Shape *shape, long long *low, long long *high) {
    const int decode = out != NULL;
    const long long end = w->end;
    const long long position = w->position;
    long long pos = 0;
    *low = INT64_MAX;
    *high = INT64_MIN;
    char name[64];
    for (long long index = 0; index < count; index++) {
        w->index = index;
        if (pos >= end) {
            return fail(w, "the records end at byte %lld but the batch claims %lld records",
                        position + end, count);
        }
        long long at = position + pos;
        long long length;
        if ((pos = read_varint(w, pos, end, &length)) < 0) return -1;
        long long record_end = pos + length;
        if (length < 1 || record_end > end) {
            return fail(w, "length %lld at byte %lld does not fit the records, which end at byte %lld",
                        length, at, position + end);
        }
        pos += 1; /* attributes: unused by v2 records (Kafka ignores them) */
        at = position + pos;
        long long timestamp_delta = 0;
        if ((pos = read_varlong(w, pos, record_end, &timestamp_delta)) < 0) return -1;
        if (!decode) {
            long long timestamp;
            if (__builtin_add_overflow(base_timestamp, timestamp_delta, &timestamp)) {
                return fail(w,
                            "timestamp delta %lld at byte %lld puts the timestamp outside int64 "
                            "(base timestamp %lld)",
                            timestamp_delta, at, base_timestamp);
            }
            if (timestamp != NO_TIMESTAMP) {
                if (timestamp < *low) *low = timestamp;
                if (timestamp > *high) *high = timestamp;
            }
        }
        at = position + pos;
        long long offset_delta;
        if ((pos = read_varint(w, pos, record_end, &offset_delta)) < 0) return -1;
        if (offset_delta != index && !decode) {
            return fail(w,
                        "offset delta %lld at byte %lld, expected %lld (a produced batch numbers "
                        "its records 0, 1, 2, ...)",
                        offset_delta, at, index);
        }
        long long key_start, key_stop, value_start, value_stop;
        if (read_field(w, pos, record_end, "key", 1, &key_start, &key_stop) < 0) return -1;
        pos = key_stop < 0 ? key_start : key_stop;
        if (read_field(w, pos, record_end, "value", 1, &value_start, &value_stop) < 0) return -1;
        pos = value_stop < 0 ? value_start : value_stop;
        at = position + pos;
        long long header_count;
        if ((pos = read_varint(w, pos, record_end, &header_count)) < 0) return -1;
        if (header_count < 0) {
            return fail(w, "header count %lld at byte %lld is negative", header_count, at);
        }
        PyObject *headers = NULL;
        const int make = decode && (shape == NULL || offset_delta >= shape->start);
        if (make && header_count > 0) {
            headers = PyList_New(0);
            if (headers == NULL) goto python_error;
        }
        for (long long number = 0; number < header_count; number++) {
            long long start, stop;
            snprintf(name, sizeof name, "header %lld key", number);
            if (read_field(w, pos, record_end, name, 0, &start, &stop) < 0) goto corrupt;
            if (!valid_utf8(w->data + start, stop - start)) {
                fail(w, "header %lld key at byte %lld is not valid UTF-8", number, position + start);
                goto corrupt;
            }
            long long vstart, vstop;
            snprintf(name, sizeof name, "header %lld value", number);
            if (read_field(w, stop, record_end, name, 1, &vstart, &vstop) < 0) goto corrupt;
            pos = vstop < 0 ? vstart : vstop;
            if (make) {
                PyObject *hkey = PyUnicode_DecodeUTF8((const char *)w->data + start,
                                                      (Py_ssize_t)(stop - start), "strict");
                if (hkey == NULL) goto python_error_headers;
                PyObject *hvalue = bytes_or_none(w, vstart, vstop);
                if (hvalue == NULL) {
                    Py_DECREF(hkey);
                    goto python_error_headers;
                }
                PyObject *pair = PyTuple_Pack(2, hkey, hvalue);
                Py_DECREF(hkey);
                Py_DECREF(hvalue);
                if (pair == NULL || PyList_Append(headers, pair) < 0) {
                    Py_XDECREF(pair);
                    goto python_error_headers;
                }
                Py_DECREF(pair);
            }
        }
        if (pos != record_end) {
            fail(w, "length says the record ends at byte %lld but its fields end at byte %lld",
                 position + record_end, position + pos);
            goto corrupt;
        }
        if (make) {
            PyObject *key = bytes_or_none(w, key_start, key_stop);
            PyObject *value = key ? bytes_or_none(w, value_start, value_stop) : NULL;
            PyObject *header_tuple = NULL;
            if (value != NULL) header_tuple = headers ? PyList_AsTuple(headers) : PyTuple_New(0);
            Py_XDECREF(headers);
            PyObject *record = NULL;
            if (header_tuple == NULL) {
                Py_XDECREF(key);
                Py_XDECREF(value);
            } else if (shape != NULL) {
                record = shaped(shape, offset_delta, timestamp_delta, key, value, header_tuple);
            } else {
                record = Py_BuildValue("(LLNNN)", offset_delta, timestamp_delta, key, value,
                                       header_tuple);
            }
            if (record == NULL) goto python_error;
            int appended = PyList_Append(out, record);
            Py_DECREF(record);
            if (appended < 0) goto python_error;
        }
        continue;
    corrupt:
        Py_XDECREF(headers);
        return -1;
    python_error_headers:
        Py_XDECREF(headers);
    python_error:
        w->failed = 2;
        return -1;
    }
    if (pos != end) {
        snprintf(w->msg, MSG_SIZE, "%lld bytes at byte %lld follow the last of the batch's %lld records",
                 end - pos, position + pos, count);
        w->failed = 1;
        return -1;
    }
    if (*low > *high) {
        *low = *high = NO_TIMESTAMP;
    }
    return 0;
}

static PyObject *raise_walk_error(Walker *w) {
    if (w->failed == 1) {
        PyErr_SetString(CorruptRecordError, w->msg);
    }
    return NULL;
}

static PyObject *validate_records(PyObject *self, PyObject *args) {
    Py_buffer data;
    long long count, base_timestamp, position;
    if (!PyArg_ParseTuple(args, "y*LLL:validate_records", &data, &count, &base_timestamp,
                          &position)) {
        return NULL;
    }
    Walker w = {data.buf, data.len, position, 0, 0, {0}};
    long long low, high;
    int result;
    if (data.len >= NOGIL_BYTES) {
        Py_BEGIN_ALLOW_THREADS
        result = walk(&w, count, base_timestamp, NULL, NULL, &low, &high);
        Py_END_ALLOW_THREADS
    } else {
        result = walk(&w, count, base_timestamp, NULL, NULL, &low, &high);
    }
    PyBuffer_Release(&data);
    if (result < 0) {
        return raise_walk_error(&w);
    }
    return Py_BuildValue("(LL)", low, high);
}

static PyObject *decode_records(PyObject *self, PyObject *args) {
    Py_buffer data;
    long long count, position;
    if (!PyArg_ParseTuple(args, "y*LL:decode_records", &data, &count, &position)) {
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    Walker w = {data.buf, data.len, position, 0, 0, {0}};
    long long low, high;
    int result = walk(&w, count, 0, out, NULL, &low, &high);
    PyBuffer_Release(&data);
    if (result < 0) {
        Py_DECREF(out);
        return raise_walk_error(&w);
    }
    return out;
}

static PyObject *decode_records_as(PyObject *self, PyObject *args) {
    Py_buffer data;
    long long count, position;
    Shape shape;
    PyObject *cls;
    if (!PyArg_ParseTuple(args, "y*LLOO!O!LLOL:decode_records_as", &data, &count, &position,
                          &cls, &PyTuple_Type, &shape.prefix, &PyTuple_Type, &shape.suffix,
                          &shape.base_offset, &shape.base_timestamp, &shape.stamp,
                          &shape.start)) {
        return NULL;
    }
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &PyTuple_Type)) {
        PyBuffer_Release(&data);
        PyErr_Format(PyExc_TypeError, "decode_records_as: cls must be a tuple type, not %R", cls);
        return NULL;
    }
    if (shape.stamp != Py_None && !PyLong_CheckExact(shape.stamp)) {
        PyBuffer_Release(&data);
        PyErr_Format(PyExc_TypeError, "decode_records_as: stamp must be int or None, not %R",
                     shape.stamp);
        return NULL;
    }
    shape.cls = (PyTypeObject *)cls;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    Walker w = {data.buf, data.len, position, 0, 0, {0}};
    long long low, high;
    int result = walk(&w, count, 0, out, &shape, &low, &high);
    PyBuffer_Release(&data);
    if (result < 0) {
        Py_DECREF(out);
        return raise_walk_error(&w);
    }
    return out;
}

/* ------------------------------------------------------------------ encoding */

/* The scratch buffer a record's body is built in: on the stack while it fits, else on the
 * heap (sized from the key and value up front, so a record costs at most one allocation). */
#define STACK_BYTES 2048

typedef struct {
    char *p;
    Py_ssize_t len;
    Py_ssize_t cap;
    int heap;
} Growable;

static int reserve(Growable *g, Py_ssize_t extra) {
    if (g->len + extra <= g->cap) return 0;
    Py_ssize_t cap = g->cap * 2;
    if (cap < g->len + extra) cap = g->len + extra;
    char *p = g->heap ? PyMem_Realloc(g->p, (size_t)cap) : PyMem_Malloc((size_t)cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (!g->heap) memcpy(p, g->p, (size_t)g->len);
    g->p = p;
    g->cap = cap;
    g->heap = 1;
    return 0;
}

static void release(Growable *g) {
    if (g->heap) PyMem_Free(g->p);
}

static inline Py_ssize_t put_unsigned(char *dst, uint64_t raw) {
    Py_ssize_t n = 0;
    while (raw >= 0x80) {
        dst[n++] = (char)((raw & 0x7F) | 0x80);
        raw >>= 7;
    }
    dst[n++] = (char)raw;
    return n;
}

static inline uint64_t zigzag(long long v) {
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int put_varint(Growable *g, long long v) {
    if (reserve(g, 10) < 0) return -1;
    g->len += put_unsigned(g->p + g->len, zigzag(v));
    return 0;
}

static int put_bytes(Growable *g, const char *data, Py_ssize_t n) {
    if (reserve(g, n + 10) < 0) return -1;
    g->len += put_unsigned(g->p + g->len, zigzag(n));
    memcpy(g->p + g->len, data, (size_t)n);
    g->len += n;
    return 0;
}

static Py_ssize_t size_hint(PyObject *obj) {
    if (PyBytes_Check(obj)) return PyBytes_GET_SIZE(obj);
    if (PyByteArray_Check(obj)) return PyByteArray_GET_SIZE(obj);
    return 0;
}

static PyObject *type_name(PyObject *obj) {
    return PyType_GetName(Py_TYPE(obj));
}

static int type_error(const char *fmt, Py_ssize_t index, PyObject *obj) {
    PyObject *name = type_name(obj);
    if (name != NULL) {
        PyErr_Format(PyExc_TypeError, fmt, index, name);
        Py_DECREF(name);
    }
    return -1;
}

/* Writes a key, value or header value (bytes, bytearray, memoryview or None). */
static int put_field(Growable *g, PyObject *obj, Py_ssize_t index, const char *what) {
    if (obj == Py_None) {
        return put_varint(g, -1);
    }
    if (PyBytes_Check(obj)) {
        return put_bytes(g, PyBytes_AS_STRING(obj), PyBytes_GET_SIZE(obj));
    }
    if (PyByteArray_Check(obj)) {
        return put_bytes(g, PyByteArray_AS_STRING(obj), PyByteArray_GET_SIZE(obj));
    }
    if (PyMemoryView_Check(obj)) {
        PyObject *copy = PyBytes_FromObject(obj);
        if (copy == NULL) return -1;
        int result = put_bytes(g, PyBytes_AS_STRING(copy), PyBytes_GET_SIZE(copy));
        Py_DECREF(copy);
        return result;
    }
    PyObject *name = type_name(obj);
    if (name != NULL) {
        PyErr_Format(PyExc_TypeError, "record %zd: %s must be bytes or None, not %U", index, what,
                     name);
        Py_DECREF(name);
    }
    return -1;
}

/* Sets the size of the bytearray target to needed, doubling its allocation when it must grow.
 * bytearray's own growth is 1/8 at a time, so a 256 KiB batch appended record by record was
 * copied about forty times over; doubling copies it about twice. The second resize is a
 * "minor downsize" (still at least half the allocation), which keeps the allocation. */
static int grow_bytearray(PyObject *target, Py_ssize_t needed) {
    PyByteArrayObject *array = (PyByteArrayObject *)target;
    Py_ssize_t used = (Py_ssize_t)(array->ob_start - array->ob_bytes);
    if (needed + used + 1 > array->ob_alloc && needed < PY_SSIZE_T_MAX / 2) {
        if (PyByteArray_Resize(target, 2 * needed) < 0) return -1;
    }
    return PyByteArray_Resize(target, needed);
}

static const char PAIRS[] = "record %zd: headers must be (str, bytes | None) pairs, not %U";

/* Appends one record (length prefix and body) to the bytearray target, building the body in
 * body first. On failure target may have grown: the caller truncates it. */
static int put_record(PyObject *target, Growable *body, Py_ssize_t index, PyObject *offset_obj,
                      PyObject *delta_obj, PyObject *key, PyObject *value, PyObject *headers) {
    int overflow;
    long long timestamp_delta = PyLong_AsLongLongAndOverflow(delta_obj, &overflow);
    if (timestamp_delta == -1 && PyErr_Occurred()) return -1;
    if (overflow) {
        PyErr_Format(PyExc_ValueError, "record %zd: timestamp delta %R is outside int64", index,
                     delta_obj);
        return -1;
    }
    long long offset_delta = PyLong_AsLongLongAndOverflow(offset_obj, &overflow);
    if (offset_delta == -1 && PyErr_Occurred()) return -1;
    if (overflow || offset_delta < 0 || offset_delta > INT32_MAX_) {
        PyErr_Format(PyExc_ValueError, "record %zd: offset delta %R is outside 0..2147483647",
                     index, offset_obj);
        return -1;
    }
    body->len = 0;
    if (reserve(body, 40 + size_hint(key) + size_hint(value)) < 0) return -1;
    body->p[body->len++] = 0; /* attributes */
    body->len += put_unsigned(body->p + body->len, zigzag(timestamp_delta));
    body->len += put_unsigned(body->p + body->len, zigzag(offset_delta));
    if (put_field(body, key, index, "key") < 0 || put_field(body, value, index, "value") < 0) {
        return -1;
    }
    if (PyTuple_CheckExact(headers) && PyTuple_GET_SIZE(headers) == 0) {
        if (put_varint(body, 0) < 0) return -1;
    } else {
        PyObject *pairs = PySequence_Fast(headers, "");
        if (pairs == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
            PyErr_Clear();
            return type_error(PAIRS, index, headers);
        }
        Py_ssize_t n = PySequence_Fast_GET_SIZE(pairs);
        int failed = put_varint(body, n) < 0;
        for (Py_ssize_t i = 0; i < n && !failed; i++) {
            PyObject *pair = PySequence_Fast_GET_ITEM(pairs, i);
            PyObject *items = PySequence_Fast(pair, "");
            if (items == NULL || PySequence_Fast_GET_SIZE(items) != 2) {
                if (items == NULL && !PyErr_ExceptionMatches(PyExc_TypeError)) {
                    failed = 1;
                    break;
                }
                PyErr_Clear();
                Py_XDECREF(items);
                type_error(PAIRS, index, pair);
                failed = 1;
                break;
            }
            PyObject *hkey = PySequence_Fast_GET_ITEM(items, 0);
            PyObject *hvalue = PySequence_Fast_GET_ITEM(items, 1);
            if (!PyUnicode_CheckExact(hkey)) {
                type_error("record %zd: header key must be str, not %U", index, hkey);
                failed = 1;
            } else {
                Py_ssize_t size;
                const char *utf8 = PyUnicode_AsUTF8AndSize(hkey, &size);
                failed = utf8 == NULL || put_bytes(body, utf8, size) < 0 ||
                         put_field(body, hvalue, index, "header value") < 0;
            }
            Py_DECREF(items);
        }
        Py_DECREF(pairs);
        if (failed) return -1;
    }
    char prefix[10];
    Py_ssize_t prefix_len = put_unsigned(prefix, zigzag(body->len));
    Py_ssize_t size = PyByteArray_GET_SIZE(target);
    if (grow_bytearray(target, size + prefix_len + body->len) < 0) return -1;
    char *dst = PyByteArray_AS_STRING(target) + size;
    memcpy(dst, prefix, (size_t)prefix_len);
    memcpy(dst + prefix_len, body->p, (size_t)body->len);
    return 0;
}

static PyObject *encode_record(PyObject *self, PyObject *args) {
    PyObject *target, *offset_obj, *delta_obj, *key, *value, *headers;
    if (!PyArg_ParseTuple(args, "YOOOOO:encode_record", &target, &offset_obj, &delta_obj, &key,
                          &value, &headers)) {
        return NULL;
    }
    if (!PyLong_CheckExact(offset_obj) || !PyLong_CheckExact(delta_obj)) {
        PyErr_SetString(PyExc_TypeError, "record 0: offset and timestamp deltas must be int");
        return NULL;
    }
    char stack[STACK_BYTES];
    Growable body = {stack, 0, STACK_BYTES, 0};
    Py_ssize_t size = PyByteArray_GET_SIZE(target);
    int result = put_record(target, &body, 0, offset_obj, delta_obj, key, value, headers);
    release(&body);
    if (result < 0) {
        if (PyByteArray_GET_SIZE(target) > size) {
            PyObject *type, *value_, *traceback;
            PyErr_Fetch(&type, &value_, &traceback);
            PyByteArray_Resize(target, size);
            PyErr_Restore(type, value_, traceback);
        }
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *encode_records(PyObject *self, PyObject *args) {
    PyObject *target, *records;
    long long base_timestamp, first_offset_delta, max_timestamp;
    if (!PyArg_ParseTuple(args, "YOLLL:encode_records", &target, &records, &base_timestamp,
                          &first_offset_delta, &max_timestamp)) {
        return NULL;
    }
    PyObject *iterator = PyObject_GetIter(records);
    if (iterator == NULL) return NULL;
    char stack[STACK_BYTES];
    Growable body = {stack, 0, STACK_BYTES, 0};
    Py_ssize_t size = PyByteArray_GET_SIZE(target);
    int failed = 0;
    Py_ssize_t index = 0;
    PyObject *record;
    while (!failed && (record = PyIter_Next(iterator)) != NULL) {
        PyObject *fields = PySequence_Fast(record, "");
        if (fields == NULL || PySequence_Fast_GET_SIZE(fields) != 4) {
            if (fields == NULL && !PyErr_ExceptionMatches(PyExc_TypeError)) {
                failed = 1;
            } else {
                PyErr_Clear();
                type_error("record %zd: records must be (timestamp, key, value, headers) tuples, "
                           "not %U",
                           index, record);
                failed = 1;
            }
            Py_XDECREF(fields);
            Py_DECREF(record);
            break;
        }
        PyObject *ts_obj = PySequence_Fast_GET_ITEM(fields, 0);
        PyObject *offset_obj = NULL, *delta_obj = NULL;
        long long timestamp = 0;
        if (!PyLong_CheckExact(ts_obj)) {
            type_error("record %zd: timestamp must be int, not %U", index, ts_obj);
            failed = 1;
        } else {
            int overflow;
            timestamp = PyLong_AsLongLongAndOverflow(ts_obj, &overflow);
            long long delta;
            if (overflow) {
                PyErr_Format(PyExc_ValueError, "record %zd: timestamp %R is outside int64", index,
                             ts_obj);
                failed = 1;
            } else if (__builtin_sub_overflow(timestamp, base_timestamp, &delta)) {
                PyObject *base = PyLong_FromLongLong(base_timestamp);
                delta_obj = base ? PyNumber_Subtract(ts_obj, base) : NULL;
                Py_XDECREF(base);
            } else {
                delta_obj = PyLong_FromLongLong(delta);
            }
            if (!failed) {
                long long offset_delta;
                if (__builtin_add_overflow(first_offset_delta, (long long)index, &offset_delta)) {
                    PyObject *first = PyLong_FromLongLong(first_offset_delta);
                    PyObject *step = PyLong_FromSsize_t(index);
                    offset_obj = first && step ? PyNumber_Add(first, step) : NULL;
                    Py_XDECREF(first);
                    Py_XDECREF(step);
                } else {
                    offset_obj = PyLong_FromLongLong(offset_delta);
                }
                failed = delta_obj == NULL || offset_obj == NULL ||
                         put_record(target, &body, index, offset_obj, delta_obj,
                                    PySequence_Fast_GET_ITEM(fields, 1),
                                    PySequence_Fast_GET_ITEM(fields, 2),
                                    PySequence_Fast_GET_ITEM(fields, 3)) < 0;
            }
        }
        Py_XDECREF(offset_obj);
        Py_XDECREF(delta_obj);
        Py_DECREF(fields);
        Py_DECREF(record);
        if (!failed && timestamp > max_timestamp) max_timestamp = timestamp;
        index++;
    }
    Py_DECREF(iterator);
    release(&body);
    if (!failed && PyErr_Occurred()) failed = 1; /* the iterator raised */
    if (failed) {
        if (PyByteArray_GET_SIZE(target) > size) {
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            PyByteArray_Resize(target, size);
            PyErr_Restore(type, value, traceback);
        }
        return NULL;
    }
    return PyLong_FromLongLong(max_timestamp);
}

/* ------------------------------------------------------------------ module */

static PyMethodDef methods[] = {
    {"validate_records", validate_records, METH_VARARGS,
     "validate_records(data, count, base_timestamp, position) -> (low, high): see pycodec."},
    {"decode_records", decode_records, METH_VARARGS,
     "decode_records(data, count, position) -> list of records: see pycodec."},
    {"decode_records_as", decode_records_as, METH_VARARGS,
     "decode_records_as(data, count, position, cls, prefix, suffix, base_offset, "
     "base_timestamp, stamp, start) -> list of cls: see pycodec."},
    {"encode_record", encode_record, METH_VARARGS,
     "encode_record(out, offset_delta, timestamp_delta, key, value, headers): see pycodec."},
    {"encode_records", encode_records, METH_VARARGS,
     "encode_records(out, records, base_timestamp, first_offset_delta, max_timestamp) -> int: "
     "see pycodec."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_accel",
    "The record-stream codec in C (pycodec.py is its pure-Python twin and specification).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__accel(void) {
    PyObject *errors = PyImport_ImportModule("raftka.common.records.errors");
    if (errors == NULL) return NULL;
    CorruptRecordError = PyObject_GetAttrString(errors, "CorruptRecordError");
    Py_DECREF(errors);
    if (CorruptRecordError == NULL) return NULL;
    return PyModule_Create(&module);
}
