/*
 * c_add_header: a Proxy-Wasm 0.2.1 plugin written in C, with no SDK: the ABI's imports and exports
 * are declared here by hand.
 *
 * What it does:
 *   - adds `x-c-plugin: 1` to every request (what the upstream sees) and to every response;
 *   - removes from every request the header named by its configuration, e.g.
 *       {"remove": "x-secret"}
 *     (a JSON object; `remove` is optional; escapes in the string are refused).
 *
 * Build (Debian 12: clang-14, lld, wasi-libc):
 *   clang --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all -o c_add_header.wasm plugin.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

/* WasmResult values of the ABI. */
enum { WASM_OK = 0, WASM_NOT_FOUND = 1 };
/* Action values. */
enum { ACTION_CONTINUE = 0, ACTION_PAUSE = 1 };
/* Map and buffer types, log levels. */
enum { MAP_REQUEST_HEADERS = 0, MAP_RESPONSE_HEADERS = 2 };
enum { BUFFER_PLUGIN_CONFIGURATION = 7 };
enum { LOG_INFO = 2, LOG_WARN = 3, LOG_ERROR = 4 };

/* ---- hostcalls (imports) ---- */
IMPORT(proxy_log) uint32_t proxy_log(uint32_t level, const char *msg, size_t size);
IMPORT(proxy_get_buffer_bytes)
uint32_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size, char **ret_ptr, size_t *ret_size);
IMPORT(proxy_add_header_map_value)
uint32_t proxy_add_header_map_value(uint32_t map, const char *key, size_t key_size, const char *value,
                                    size_t value_size);
IMPORT(proxy_remove_header_map_value)
uint32_t proxy_remove_header_map_value(uint32_t map, const char *key, size_t key_size);

/* ---- state: one root context per instance of this module ---- */
#define MAX_NAME 128
static char remove_name[MAX_NAME];
static size_t remove_len; /* 0: nothing to remove */

static void log_str(uint32_t level, const char *s) { proxy_log(level, s, strlen(s)); }

/* The host writes buffers it returns into memory it asked us for with this. */
EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) { return malloc(size); }

EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}

EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t context_id, uint32_t parent_id) {
    (void)context_id;
    (void)parent_id; /* no per-request state */
}

EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root_id, size_t vm_config_size) {
    (void)root_id;
    (void)vm_config_size;
    return 1;
}

/* Finds `"key"` then `:` then a string in a flat JSON object; copies the string (no escapes) into
 * out. Returns its length, 0 when the key is absent, -1 when the value is not a plain string or too
 * long. Bounded by `len` throughout. */
static int json_string_field(const char *buf, size_t len, const char *key, char *out, size_t cap) {
    size_t klen = strlen(key);
    for (size_t i = 0; i + klen + 2 <= len; i++) {
        if (buf[i] != '"' || memcmp(buf + i + 1, key, klen) != 0 || buf[i + 1 + klen] != '"') continue;
        size_t j = i + klen + 2;
        while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' || buf[j] == '\r')) j++;
        if (j >= len || buf[j] != ':') continue; /* a string value equal to the key, not the key */
        j++;
        while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' || buf[j] == '\r')) j++;
        if (j >= len || buf[j] != '"') return -1;
        j++;
        size_t n = 0;
        while (j < len && buf[j] != '"') {
            if (buf[j] == '\\' || n + 1 >= cap) return -1;
            out[n++] = buf[j++];
        }
        if (j >= len) return -1; /* unterminated */
        out[n] = '\0';
        return (int)n;
    }
    return 0;
}

EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root_id, size_t config_size) {
    (void)root_id;
    remove_len = 0;
    if (config_size == 0) return 1;
    char *cfg = NULL;
    size_t cfg_len = 0;
    if (proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, config_size, &cfg, &cfg_len) != WASM_OK) {
        log_str(LOG_ERROR, "c_add_header: cannot read the plugin configuration");
        return 0;
    }
    int n = json_string_field(cfg, cfg_len, "remove", remove_name, sizeof remove_name);
    free(cfg);
    if (n < 0) {
        log_str(LOG_ERROR, "c_add_header: `remove` must be a plain string of under 128 bytes");
        return 0;
    }
    /* Header maps are keyed by lower-case names. */
    for (int i = 0; i < n; i++)
        if (remove_name[i] >= 'A' && remove_name[i] <= 'Z') remove_name[i] = (char)(remove_name[i] + 32);
    remove_len = (size_t)n;
    if (remove_len) {
        char msg[64 + MAX_NAME];
        strcpy(msg, "c_add_header: removing request header ");
        strcat(msg, remove_name);
        log_str(LOG_INFO, msg);
    }
    return 1;
}

static const char NAME[] = "x-c-plugin";
static const char VALUE[] = "1";

EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t context_id, uint32_t num_headers, uint32_t end_of_stream) {
    (void)context_id;
    (void)num_headers;
    (void)end_of_stream;
    if (remove_len) proxy_remove_header_map_value(MAP_REQUEST_HEADERS, remove_name, remove_len);
    if (proxy_add_header_map_value(MAP_REQUEST_HEADERS, NAME, sizeof NAME - 1, VALUE, sizeof VALUE - 1) != WASM_OK)
        log_str(LOG_WARN, "c_add_header: could not add the request header");
    return ACTION_CONTINUE;
}

EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, uint32_t num_headers, uint32_t end_of_stream) {
    (void)context_id;
    (void)num_headers;
    (void)end_of_stream;
    proxy_add_header_map_value(MAP_RESPONSE_HEADERS, NAME, sizeof NAME - 1, VALUE, sizeof VALUE - 1);
    return ACTION_CONTINUE;
}

EXPORT(proxy_on_done) uint32_t proxy_on_done(uint32_t context_id) {
    (void)context_id;
    return 1; /* nothing pending: the context may be deleted */
}

EXPORT(proxy_on_log) void proxy_on_log(uint32_t context_id) { (void)context_id; }

EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) { (void)context_id; }
