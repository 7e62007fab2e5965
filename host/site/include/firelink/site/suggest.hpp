// "Did you mean …?" for an id or key that names nothing: the closest of the names that exist, by edit distance.
// A site file is written by hand, often from a datasheet; "rs458" for "rs485" or "helo" for "hello" should cost the
// integrator one glance at the message, not a search through the file and the plugin list.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace firelink::site {

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two neighbours each cost 1;
// letters compare case-insensitively (ids are case-sensitive, but "RS485" for "rs485" is a typo all the same).
std::size_t edit_distance(std::string_view a, std::string_view b);

// " (did you mean 'rs485'?)" with the known names closest to `word`, or "" when none is close enough to be a typo
// of it: at most 1 edit for a word of up to 4 characters, 2 up to 8, 3 beyond. Two names equally close are both
// given (" (did you mean 'a' or 'b'?)"); more than two are too vague to help and give "".
std::string did_you_mean(std::string_view word, const std::vector<std::string> &known);

}  // namespace firelink::site
