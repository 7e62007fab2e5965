// Fault injection for tests (--test-faults only): how the next POST /v1/events batches are to be mistreated.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace firelink::receiver {

class fault_plan {
public:
    struct status_fault {
        unsigned status;
        std::optional<unsigned> retry_after;
    };

    // Applies a POST /test/faults body; throws std::invalid_argument naming what is wrong (nothing changes then).
    void apply(const nlohmann::json &j) {
        if (!j.is_object()) throw std::invalid_argument("the body must be a JSON object");
        for (const auto &[key, v] : j.items())
            if (key != "status" && key != "retry_after" && key != "count" && key != "delay_ms" &&
                key != "drop_response_after_commit" && key != "reject_device" && key != "clear")
                throw std::invalid_argument("unknown key '" + key + "'");
        const auto number = [&](const char *key, unsigned lo, unsigned hi) -> std::optional<unsigned> {
            if (!j.contains(key)) return std::nullopt;
            const auto &v = j.at(key);
            if (!v.is_number_unsigned() || v.get<std::uint64_t>() < lo || v.get<std::uint64_t>() > hi)
                throw std::invalid_argument(std::string("'") + key + "' must be an integer from " +
                                            std::to_string(lo) + " to " + std::to_string(hi));
            return v.get<unsigned>();
        };
        const auto status = number("status", 400, 599);
        const auto retry_after = number("retry_after", 0, 3600);
        const auto count = number("count", 0, 1000000).value_or(1);
        const auto delay = number("delay_ms", 0, 600000);
        const auto drop = number("drop_response_after_commit", 0, 1000000);
        std::optional<std::string> reject;
        if (j.contains("reject_device")) {
            const auto &v = j.at("reject_device");
            if (v.is_null())
                reject = "";
            else if (v.is_string())
                reject = v.get<std::string>();
            else
                throw std::invalid_argument("'reject_device' must be a string or null");
        }
        if (j.contains("clear") && !j.at("clear").is_boolean()) throw std::invalid_argument("'clear' must be a bool");
        if (retry_after && !status) throw std::invalid_argument("'retry_after' goes with 'status'");
        if (j.contains("count") && !status && !delay)
            throw std::invalid_argument("'count' goes with 'status' or 'delay_ms'");

        std::lock_guard lock(mutex_);
        if (j.value("clear", false)) {
            const auto injected = state_.injected;  // a running total: survives a clear
            state_ = {};
            state_.injected = injected;
        }
        if (status) {
            state_.status = {*status, retry_after};
            state_.status_count = count;
        }
        if (delay) {
            state_.delay_ms = *delay;
            state_.delay_count = count;
        }
        if (drop) state_.drop_count = *drop;
        if (reject) state_.reject_device = *reject;
    }

    nlohmann::json describe() {
        std::lock_guard lock(mutex_);
        nlohmann::json j;
        j["status"] = state_.status_count ? nlohmann::json(state_.status.status) : nlohmann::json(nullptr);
        j["status_count"] = state_.status_count;
        if (state_.status_count && state_.status.retry_after) j["retry_after"] = *state_.status.retry_after;
        j["delay_ms"] = state_.delay_ms;
        j["delay_count"] = state_.delay_count;
        j["drop_response_after_commit"] = state_.drop_count;
        j["reject_device"] = state_.reject_device;
        j["injected"] = state_.injected;
        return j;
    }

    // Each take_* consumes one use of its fault.
    std::optional<status_fault> take_status() {
        std::lock_guard lock(mutex_);
        if (!state_.status_count) return std::nullopt;
        --state_.status_count;
        ++state_.injected;
        return state_.status;
    }
    unsigned take_delay_ms() {
        std::lock_guard lock(mutex_);
        if (!state_.delay_count) return 0;
        --state_.delay_count;
        ++state_.injected;
        return state_.delay_ms;
    }
    bool take_drop() {
        std::lock_guard lock(mutex_);
        if (!state_.drop_count) return false;
        --state_.drop_count;
        ++state_.injected;
        return true;
    }
    std::string reject_device() {
        std::lock_guard lock(mutex_);
        return state_.reject_device;
    }

private:
    struct fault_state {
        status_fault status{500, std::nullopt};
        unsigned status_count = 0;
        unsigned delay_ms = 0, delay_count = 0;
        unsigned drop_count = 0;
        std::string reject_device;
        std::uint64_t injected = 0;
    };
    std::mutex mutex_;
    fault_state state_;
};

}  // namespace firelink::receiver
