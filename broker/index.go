package broker

// insert adds e to the indexes and takes its port.
func (b *Broker) insert(e *entry) {
	b.byID[e.ID] = e
	b.byName[e.Key()] = e
	b.byPort[e.Port] = e
	b.pool.take(e.Port)
	b.perUser[e.Owner.User]++
}

// remove drops e from the indexes and frees its port. It returns the
// processes no lease needs watched any more.
func (b *Broker) remove(e *entry) []Process {
	delete(b.byID, e.ID)
	delete(b.byName, e.Key())
	if b.perUser[e.Owner.User]--; b.perUser[e.Owner.User] <= 0 {
		delete(b.perUser, e.Owner.User)
	}
	if b.byPort[e.Port] == e {
		delete(b.byPort, e.Port)
		b.pool.give(e.Port)
	}
	var unwatch []Process
	for _, p := range []Process{e.Owner, e.Launcher} {
		if p.IsZero() {
			continue
		}
		k := keyOf(p)
		if set := b.byProc[k]; set != nil {
			delete(set, e.ID)
			if len(set) == 0 {
				delete(b.byProc, k)
				if wp, ok := b.watched[k]; ok {
					delete(b.watched, k)
					unwatch = append(unwatch, wp)
				}
			}
		}
	}
	return unwatch
}

// indexProcs records e under its owner and launcher and returns the
// processes that need a new watch.
func (b *Broker) indexProcs(e *entry) []Process {
	var add []Process
	for _, p := range []Process{e.Owner, e.Launcher} {
		if p.IsZero() {
			continue
		}
		k := keyOf(p)
		set := b.byProc[k]
		if set == nil {
			set = make(map[string]*entry)
			b.byProc[k] = set
		}
		set[e.ID] = e
		if _, ok := b.watched[k]; !ok && b.watcher != nil {
			b.watched[k] = p
			add = append(add, p)
		}
	}
	return add
}

// watch starts watching procs. A process the watcher cannot watch is
// checked again at once, so an owner that died in between is still seen.
func (b *Broker) watch(procs []Process) {
	if b.watcher == nil {
		return
	}
	for _, p := range procs {
		if err := b.watcher.Add(p); err != nil {
			b.log.Warn("cannot watch process; its leases are reclaimed at the next restart or TTL", "pid", p.PID, "err", err)
		}
	}
}

func (b *Broker) unwatch(procs []Process) {
	if b.watcher == nil {
		return
	}
	for _, p := range procs {
		b.watcher.Remove(p)
	}
}
