/*
 * Counting allocations in a unit test binary: every malloc, calloc and
 * realloc of the process (libraries included) while `counting` is set.
 * Under AddressSanitizer through its hooks; else by interposing glibc's
 * allocator in the test binary that includes this (once). Call
 * count_init() first thing in main.
 */
#ifndef RELAY_TEST_ALLOC_COUNT_H
#define RELAY_TEST_ALLOC_COUNT_H

#include <stddef.h>

static volatile int counting;
static volatile size_t allocations;

#if defined(__SANITIZE_ADDRESS__)
/* From the sanitizers' allocator_interface.h, which gcc does not
 * install. */
int __sanitizer_install_malloc_and_free_hooks(
    void (*malloc_hook)(const volatile void *, size_t),
    void (*free_hook)(const volatile void *));
static void on_malloc(const volatile void *p, size_t n)
{
        (void)p;
        (void)n;
        if (counting)
                allocations++;
}
static void on_free(const volatile void *p)
{
        (void)p;
}
static void count_init(void)
{
        __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}
#else
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
void *malloc(size_t n)
{
        if (counting)
                allocations++;
        return __libc_malloc(n);
}
void *calloc(size_t n, size_t size)
{
        if (counting)
                allocations++;
        return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n)
{
        if (counting)
                allocations++;
        return __libc_realloc(p, n);
}
static void count_init(void)
{
}
#endif

#endif
