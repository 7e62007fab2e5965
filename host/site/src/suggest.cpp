#include <firelink/site/suggest.hpp>

#include <algorithm>
#include <cctype>

namespace firelink::site {

namespace {

char folded(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
    // Three rows of the dynamic programme: the swap of two neighbours looks two rows back.
    std::vector<std::size_t> before(b.size() + 1), previous(b.size() + 1), row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) previous[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = folded(a[i - 1]) == folded(b[j - 1]) ? 0 : 1;
            row[j] = std::min({previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost});
            if (i > 1 && j > 1 && folded(a[i - 1]) == folded(b[j - 2]) && folded(a[i - 2]) == folded(b[j - 1]))
                row[j] = std::min(row[j], before[j - 2] + 1);
        }
        before.swap(previous);
        previous.swap(row);
    }
    return previous[b.size()];
}

std::string did_you_mean(std::string_view word, const std::vector<std::string> &known) {
    const std::size_t limit = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
    std::size_t best = limit + 1;
    std::vector<std::string_view> closest;
    for (const auto &k : known) {
        if (k == word) continue;  // the name exists: whatever is wrong, it is not the spelling
        const auto d = edit_distance(word, k);
        // A short word is "close" to any other short word; a suggestion must keep most of what was written.
        if (d > limit || d >= std::max(word.size(), k.size())) continue;
        if (d < best) {
            best = d;
            closest.clear();
        }
        if (d == best && std::find(closest.begin(), closest.end(), k) == closest.end()) closest.push_back(k);
    }
    if (closest.empty() || closest.size() > 2) return {};
    std::string out = " (did you mean '" + std::string(closest[0]) + "'";
    if (closest.size() == 2) out += " or '" + std::string(closest[1]) + "'";
    return out + "?)";
}

}  // namespace firelink::site
