// UTF-8 validation as a byte automaton (Unicode Table 3-7: no overlong forms, surrogates or
// code points above U+10FFFF), shared by the matcher and the vocabulary trie so that both
// agree on which byte strings can be (the start of) text.
#pragma once

#include <cstdint>

namespace hpl::grammar::utf8 {

// States: kBoundary, or the continuation bytes still expected (with the narrower range the
// second byte of some lead bytes has).
enum State : uint8_t {
  kBoundary = 0,
  kCont1,  // one more of 80..BF
  kCont2,  // two more of 80..BF
  kCont3,  // three more of 80..BF
  kE0,     // A0..BF, then one more
  kED,     // 80..9F, then one more (no surrogates)
  kF0,     // 90..BF, then two more
  kF4,     // 80..8F, then two more (<= U+10FFFF)
  kNumStates,
  kReject = 255,
};

inline State next(State s, uint8_t b) {
  auto in = [b](int lo, int hi) { return b >= lo && b <= hi; };
  switch (s) {
    case kBoundary:
      if (b < 0x80) return kBoundary;
      if (in(0xC2, 0xDF)) return kCont1;
      if (b == 0xE0) return kE0;
      if (b == 0xED) return kED;
      if (in(0xE1, 0xEF)) return kCont2;
      if (b == 0xF0) return kF0;
      if (b == 0xF4) return kF4;
      if (in(0xF1, 0xF3)) return kCont3;
      return kReject;
    case kCont1:
      return in(0x80, 0xBF) ? kBoundary : kReject;
    case kCont2:
      return in(0x80, 0xBF) ? kCont1 : kReject;
    case kCont3:
      return in(0x80, 0xBF) ? kCont2 : kReject;
    case kE0:
      return in(0xA0, 0xBF) ? kCont1 : kReject;
    case kED:
      return in(0x80, 0x9F) ? kCont1 : kReject;
    case kF0:
      return in(0x90, 0xBF) ? kCont2 : kReject;
    case kF4:
      return in(0x80, 0x8F) ? kCont2 : kReject;
    default:
      return kReject;
  }
}

// Continuation bytes still to come in state s.
inline int pending(State s) {
  switch (s) {
    case kCont1:
      return 1;
    case kCont2:
    case kE0:
    case kED:
      return 2;
    case kCont3:
    case kF0:
    case kF4:
      return 3;
    default:
      return 0;
  }
}

// The code points [lo, hi] a character can still become in state s with bits cp so far (all
// of them are reachable: the next byte's range depends only on s).
inline void reachable(State s, uint32_t cp, uint32_t& lo, uint32_t& hi) {
  uint32_t first_lo = 0x00, first_hi = 0x3F;  // the next continuation byte's low 6 bits
  if (s == kE0) first_lo = 0x20;
  if (s == kED) first_hi = 0x1F;
  if (s == kF0) first_lo = 0x10;
  if (s == kF4) first_hi = 0x0F;
  const int rest = 6 * (pending(s) - 1);
  lo = ((cp << 6) | first_lo) << rest;
  hi = (((cp << 6) | first_hi) << rest) | ((1u << rest) - 1);
}

// The code point bits a lead byte carries.
inline uint32_t lead_bits(uint8_t b) {
  return b < 0x80 ? b : b < 0xE0 ? b & 0x1Fu : b < 0xF0 ? b & 0x0Fu : b & 0x07u;
}

}  // namespace hpl::grammar::utf8
