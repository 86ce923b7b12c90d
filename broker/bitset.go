package broker

import "math/bits"

// portSet is a set of ports, one bit each: 8 KiB for all 65536.
type portSet [1024]uint64

func (s *portSet) has(p uint16) bool { return s[p>>6]&(1<<(p&63)) != 0 }
func (s *portSet) add(p uint16)      { s[p>>6] |= 1 << (p & 63) }
func (s *portSet) remove(p uint16)   { s[p>>6] &^= 1 << (p & 63) }

// next returns the first member at or after from, wrapping around once.
// It skips 64 ports per empty word, so even a nearly empty set of 65536
// ports costs at most 1024 word reads.
func (s *portSet) next(from uint16) (uint16, bool) {
	w := int(from >> 6)
	word := s[w] &^ (1<<(from&63) - 1)
	for i := 0; i <= len(s); i++ {
		if word != 0 {
			return uint16(w<<6 + bits.TrailingZeros64(word)), true
		}
		w = (w + 1) % len(s)
		word = s[w]
	}
	return 0, false
}

func (s *portSet) count() int {
	n := 0
	for _, w := range s {
		n += bits.OnesCount64(w)
	}
	return n
}
