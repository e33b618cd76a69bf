// churnpeer: the churn load test's Go peers. The same schedule as
// bench/churn/churn_gen.c (same phases, rates, pods of 10 series with the
// same six labels, refresh interval, stale-marking as deletion), applied
// in-process, with no decoding and no reads, to one of two stores:
//
//	-store syncmap  a sync.Map from the series' label string to *series
//	-store rwmap    a map[string]*series behind a sync.RWMutex, with delete()
//
// Every second it runs runtime.GC() and debug.FreeOSMemory() and then reads
// its own VmRSS, so its RSS is the best the Go runtime can do at that
// moment, and writes the same CSV row as churn_gen:
//
//	t_s,phase,rss_bytes,live,pending,reclaimed,buckets,heap_inuse,gen_live
//
// (live is the store's own count: len() for rwmap, the generator's count for
// syncmap, which has no length; pending, reclaimed and buckets are empty.)
//
// Standard library only; build with `go build -o DIR/churnpeer churnpeer.go`.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
)

type series struct {
	ts int64
	v  float64
}

type store interface {
	put(key string, ts int64, v float64)
	del(key string)
	length(genLive int) int
}

type syncStore struct{ m sync.Map }

func (s *syncStore) put(key string, ts int64, v float64) {
	if p, ok := s.m.Load(key); ok {
		e := p.(*series)
		e.ts, e.v = ts, v
		return
	}
	s.m.Store(key, &series{ts, v})
}
func (s *syncStore) del(key string)         { s.m.Delete(key) }
func (s *syncStore) length(genLive int) int { return genLive }

type rwStore struct {
	mu sync.RWMutex
	m  map[string]*series
}

func (s *rwStore) put(key string, ts int64, v float64) {
	s.mu.Lock()
	if e, ok := s.m[key]; ok {
		e.ts, e.v = ts, v
	} else {
		s.m[key] = &series{ts, v}
	}
	s.mu.Unlock()
}
func (s *rwStore) del(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}
func (s *rwStore) length(int) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

var metricNames = []string{
	"container_cpu_usage_seconds_total",
	"container_memory_working_set_bytes",
	"container_network_receive_bytes_total",
	"container_network_transmit_bytes_total",
	"http_requests_total",
	"http_request_duration_seconds_sum",
	"http_request_duration_seconds_count",
	"process_resident_memory_bytes",
	"queue_messages_ready",
	"grpc_server_handled_total",
}

type pod struct {
	lastTS   int64
	lastTick int32
	born     int32
	alive    bool
}

var (
	st         store
	spp        int
	pods       []pod
	liveSeries int
	firstAlive int
)

func key(p, m int) string {
	return fmt.Sprintf("%s{container=\"app-%d\",instance=\"10.%d.%d.%d:8080\",job=\"kubernetes-pods\",namespace=\"team-%d\",pod=\"web-%d-7c9f8d6b5-%08x\"}",
		metricNames[m%len(metricNames)], p%7, (p>>16)&255, (p>>8)&255, p&255, p%16, p%16, p)
}

func nextTS(p *pod) int64 {
	w := time.Now().UnixMilli()
	if w > p.lastTS {
		p.lastTS = w
	} else {
		p.lastTS++
	}
	return p.lastTS
}

func putPod(i int, stale bool, ts int64, round int) {
	for m := 0; m < spp; m++ {
		k := key(i, m)
		if stale {
			st.del(k)
		} else {
			st.put(k, ts, float64(round*3+m)+0.5)
		}
	}
}

func birth(tick int32) {
	pods = append(pods, pod{lastTick: tick, born: tick, alive: true})
	i := len(pods) - 1
	putPod(i, false, nextTS(&pods[i]), 0)
	liveSeries += spp
}

func death(i int) {
	p := &pods[i]
	if !p.alive {
		return
	}
	p.alive = false
	putPod(i, true, nextTS(p), 0)
	liveSeries -= spp
}

func refresh(tick int32, every int32) {
	for firstAlive < len(pods) && !pods[firstAlive].alive {
		firstAlive++
	}
	for i := firstAlive; i < len(pods); i++ {
		p := &pods[i]
		if p.alive && tick-p.lastTick >= every {
			p.lastTick = tick
			putPod(i, false, nextTS(p), int(tick))
		}
	}
}

func rss() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb * 1024
		}
	}
	return -1
}

func main() {
	storeName := flag.String("store", "syncmap", "syncmap or rwmap")
	csvPath := flag.String("csv", "", "CSV output")
	rate := flag.Float64("rate", 10000, "new series/s in the steady phase")
	live := flag.Float64("live", 200000, "steady live set")
	steady := flag.Float64("steady", 120, "steady phase, s")
	burst := flag.Float64("burst", 1000000, "burst live series")
	burstRate := flag.Float64("burst-rate", 100000, "burst new series/s")
	hold := flag.Float64("hold", 5, "burst held, s")
	keepEvery := flag.Int("keep-every", 100, "survivors: every Nth burst pod")
	idle := flag.Float64("idle", 30, "idle phase, s")
	interval := flag.Float64("interval", 15, "refresh interval of live pods, s")
	base := flag.Float64("base", 10000, "series of the base phase")
	seriesPerPod := flag.Int("series-per-pod", 10, "series per pod")
	tEmpty := flag.Float64("phase-empty", 3, "empty phase, s")
	tBase := flag.Float64("phase-base", 4, "base and base-gone phases, s")
	flag.Parse()
	spp = *seriesPerPod
	switch *storeName {
	case "syncmap":
		st = &syncStore{}
	case "rwmap":
		st = &rwStore{m: make(map[string]*series)}
	default:
		fmt.Fprintln(os.Stderr, "churnpeer: -store syncmap|rwmap")
		os.Exit(2)
	}
	out, err := os.Create(*csvPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "churnpeer:", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(out)
	fmt.Fprintln(w, "t_s,phase,rss_bytes,live,pending,reclaimed,buckets,heap_inuse,gen_live")

	const tickMS = 100
	const tps = 1000 / tickMS
	phases := []string{"empty", "base", "base-gone", "steady", "burst", "hold", "drain", "idle", "end"}
	dur := []float64{*tEmpty, *tBase, *tBase, *steady, 0, *hold, 1, *idle}
	lifetime := int32(*live / *rate * tps)
	every := int32(*interval * 1000 / tickMS)
	basePods := int(*base) / spp
	burstPods := int(*burst) / spp
	burstFirst, steadyFirst, nextDeath := 0, 0, 0
	birthsDue := 0.0
	ph := 0
	var phStart, tick int32
	t0 := time.Now()
	sched0 := t0
	sample := func(name string) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(w, "%.1f,%s,%d,%d,,,,%d,%d\n", time.Since(t0).Seconds(), name, rss(), st.length(liveSeries),
			ms.HeapInuse, liveSeries)
		w.Flush()
	}
	sample(phases[ph])
	nextSample := 1.0
	for ph < 8 {
		// As churn_gen: a late tick shifts the schedule, phases keep their wall-time length.
		due := sched0.Add(time.Duration(tick) * tickMS * time.Millisecond)
		if late := time.Since(due); late > tickMS*time.Millisecond {
			sched0 = sched0.Add(late)
			due = due.Add(late)
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		inPh := tick - phStart
		switch phases[ph] {
		case "base":
			if inPh == 0 {
				for i := 0; i < basePods; i++ {
					birth(tick)
				}
			}
		case "base-gone":
			if inPh == 0 {
				for i := 0; i < basePods; i++ {
					death(i)
				}
			}
		case "steady":
			if inPh == 0 {
				steadyFirst = len(pods)
				nextDeath = steadyFirst
			}
			birthsDue += *rate / float64(spp) / tps
			for birthsDue >= 1 {
				birth(tick)
				birthsDue--
			}
			for nextDeath < len(pods) && tick-pods[nextDeath].born >= lifetime {
				death(nextDeath)
				nextDeath++
			}
		case "burst":
			if inPh == 0 {
				for i := steadyFirst; i < len(pods); i++ {
					death(i)
				}
				burstFirst = len(pods)
				birthsDue = 0
			}
			birthsDue += *burstRate / float64(spp) / tps
			for birthsDue >= 1 && len(pods)-burstFirst < burstPods {
				birth(tick)
				birthsDue--
			}
		case "drain":
			if inPh == 0 {
				for i := burstFirst; i < len(pods); i++ {
					if (i-burstFirst)%*keepEvery != 0 {
						death(i)
					}
				}
			}
		}
		refresh(tick, every)
		tick++
		if t := time.Since(t0).Seconds(); t >= nextSample {
			sample(phases[ph])
			nextSample = float64(int(t)) + 1
		}
		var done bool
		if phases[ph] == "burst" {
			done = len(pods)-burstFirst >= burstPods
		} else {
			done = tick-phStart >= int32(dur[ph]*tps)
		}
		if done {
			ph++
			phStart = tick
		}
	}
	sample("end")
	w.Flush()
	out.Close()
}
