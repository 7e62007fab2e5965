// Memory that ends at an inaccessible page, for the checks that must catch a plugin reading past what it was given
// (FL-PLUGIN-26, FL-PLUGIN-34) or keeping a pointer to a borrowed argument (FL-PLUGIN-25): such a read faults at once
// instead of reading whatever happens to lie there, so the check is `crashed` with SIGSEGV, deterministically.
#pragma once

#include <cstddef>
#include <cstdint>

namespace firelink::conform {

class guarded_bytes {
public:
    // A copy of `size` bytes of `data` (zeros when NULL) whose last byte is the last readable one.
    guarded_bytes(const void *data, std::size_t size);
    ~guarded_bytes();
    guarded_bytes(const guarded_bytes &) = delete;
    guarded_bytes &operator=(const guarded_bytes &) = delete;

    std::uint8_t *data() noexcept { return size_ ? data_ : nullptr; }
    std::size_t size() const noexcept { return size_; }
    // The call that borrowed the bytes returned: overwrite them (0xC1, never valid msgpack) and make them
    // inaccessible. The pages stay reserved until destruction, so their address is not reused meanwhile.
    void seal();

private:
    std::uint8_t *base_ = nullptr, *data_ = nullptr;
    std::size_t mapped_ = 0, size_ = 0;
};

}  // namespace firelink::conform
