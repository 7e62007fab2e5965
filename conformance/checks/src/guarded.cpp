#include "guarded.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>

namespace firelink::conform {

guarded_bytes::guarded_bytes(const void *data, std::size_t size) : size_(size) {
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t body = (size + page - 1) / page * page;
    mapped_ = body + page;
    void *m = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<std::uint8_t *>(m);
    ::mprotect(base_ + body, page, PROT_NONE);
    data_ = base_ + body - size;
    if (size) {
        if (data) std::memcpy(data_, data, size);
        else std::memset(data_, 0, size);
    }
}

guarded_bytes::~guarded_bytes() {
    if (base_) ::munmap(base_, mapped_);
}

void guarded_bytes::seal() {
    if (!base_) return;
    if (size_) std::memset(data_, 0xC1, size_);
    ::mprotect(base_, mapped_, PROT_NONE);
}

}  // namespace firelink::conform
