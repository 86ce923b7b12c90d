package broker

import (
	"container/heap"
	"time"
)

// expiryHeap orders TTL deadlines. Renewals push a new deadline and leave
// the old one to be skipped when it comes due, which keeps renew O(log n).
type expiryHeap struct{ items expiryItems }

type expiryItem struct {
	at time.Time
	id string
}

type expiryItems []expiryItem

func (h expiryItems) Len() int           { return len(h) }
func (h expiryItems) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryItems) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryItems) Push(x any)        { *h = append(*h, x.(expiryItem)) }
func (h *expiryItems) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (h *expiryHeap) push(at time.Time, id string) { heap.Push(&h.items, expiryItem{at, id}) }

func (h *expiryHeap) pop() { heap.Pop(&h.items) }

func (h *expiryHeap) peek() (time.Time, string, bool) {
	if len(h.items) == 0 {
		return time.Time{}, "", false
	}
	return h.items[0].at, h.items[0].id, true
}
