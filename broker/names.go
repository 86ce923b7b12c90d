package broker

import "container/list"

// NameMemory is how many names the broker remembers a last port and a last
// owner for (the sticky port, and acquire with reclaim). Past it, the name
// used longest ago is forgotten, so a client cycling through unique names
// cannot grow the daemon without bound. The store's last_ports bucket keeps
// the same number.
const NameMemory = 4096

// nameOrder tracks the names the broker remembers, least recently used
// first.
type nameOrder struct {
	max   int
	order *list.List // of NameKey, most recent at the front
	at    map[NameKey]*list.Element
}

func newNameOrder(max int) *nameOrder {
	return &nameOrder{max: max, order: list.New(), at: make(map[NameKey]*list.Element)}
}

// touch marks key as just used. When that takes the memory past its size it
// returns the name to forget.
func (o *nameOrder) touch(key NameKey) (NameKey, bool) {
	if el, ok := o.at[key]; ok {
		o.order.MoveToFront(el)
		return NameKey{}, false
	}
	o.at[key] = o.order.PushFront(key)
	if o.order.Len() <= o.max {
		return NameKey{}, false
	}
	last := o.order.Back()
	old := o.order.Remove(last).(NameKey)
	delete(o.at, old)
	return old, true
}

func (o *nameOrder) len() int { return o.order.Len() }
