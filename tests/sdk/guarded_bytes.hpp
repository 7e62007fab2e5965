// A buffer whose last byte sits just before an inaccessible page: a reader that goes one byte past the input it was
// given faults at once, instead of reading stale memory silently. Used by the fuzz and truncation tests.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>

namespace firelink::test {

class guarded_bytes {
public:
    explicit guarded_bytes(std::size_t max_size) {
        page_ = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
        data_pages_ = (max_size + page_ - 1) / page_ + 1;
        length_ = (data_pages_ + 1) * page_;
        void *base = ::mmap(nullptr, length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) throw std::runtime_error("mmap failed");
        base_ = static_cast<std::uint8_t *>(base);
        if (::mprotect(base_ + data_pages_ * page_, page_, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
    }
    ~guarded_bytes() { ::munmap(base_, length_); }
    guarded_bytes(const guarded_bytes &) = delete;
    guarded_bytes &operator=(const guarded_bytes &) = delete;

    // Copies `bytes` so that they end exactly at the guard page; valid until the next place().
    const std::uint8_t *place(std::span<const std::uint8_t> bytes) {
        if (bytes.size() > data_pages_ * page_) throw std::length_error("guarded_bytes: input too large");
        std::uint8_t *at = base_ + data_pages_ * page_ - bytes.size();
        if (!bytes.empty()) std::memcpy(at, bytes.data(), bytes.size());
        return at;
    }

private:
    std::size_t page_ = 0, data_pages_ = 0, length_ = 0;
    std::uint8_t *base_ = nullptr;
};

}  // namespace firelink::test
