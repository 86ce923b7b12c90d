package unix

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// Captured on x86-64 (little-endian) Linux 6.18, trimmed.
const (
	procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1512 1 00000000b643d970 100 0 0 10 0                      
   1: 0100007F:1FC0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2709452 1 0000000019bb5cca 100 0 0 10 0                   
   3: 00000000:1FBE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2709448 1 0000000013c61f57 100 0 0 10 0                   
   4: 0100007F:995F 0100007F:1FC0 06 00000000:00000000 03:00001236 00000000     0        0 0 3 000000005bcccf68                                      
   5: 0100007F:D51E 0100007F:1FC0 01 00000000:00000000 00:00000000 00000000     0        0 2709453 2 000000003a590476 20 0 0 10 -1                   
  17: 0100007F:1FC0 0100007F:D51E 01 00000000:00000000 00:00000000 00000000     0        0 2709454 1 0000000082c10e3d 20 0 0 10 -1                   
`
	procNetTCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100007F:1FC4 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2709458 1 00000000ca0ecda6 100 0 0 10 0
   1: 00000000000000000000000000000000:1FBB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2709445 1 00000000a8a14623 100 0 0 10 0
   2: 00000000000000000000000001000000:1FBF 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2709449 1 00000000092adc03 100 0 0 10 0
   4: 00000000000000000000000001000000:887A 00000000000000000000000001000000:1FBF 01 00000000:00000000 00:00000000 00000000     0        0 2709450 2 0000000020551e13 20 0 0 10 -1
   5: 00000000000000000000000001000000:1FBF 00000000000000000000000001000000:887A 01 00000000:00000000 00:00000000 00000000     0        0 2709451 1 000000002d884586 20 0 0 10 -1
   6: B80D012000000000000000000100A000:1FBF 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2709460 1 00000000092adc04 100 0 0 10 0
`
	procNetUDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
15414: 0100007F:1FC1 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2709455 2 000000008d212d30 0       
`
	procNetUDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
15415: 00000000000000000000000000000000:1FC2 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2709456 2 00000000299fd584 0
15416: 00000000000000000000000001000000:1FC3 00000000000000000000000001000000:1FC2 01 00000000:00000000 00:00000000 00000000     0        0 2709457 2 00000000d2c6523f 0
`
)

func TestParseProcNet(t *testing.T) {
	sock := func(addr string, state uint8, inode uint64) netSocket {
		return netSocket{local: netip.MustParseAddrPort(addr), state: state, inode: inode}
	}
	tests := []struct {
		name string
		in   string
		port uint16
		want []netSocket
	}{
		{"tcp listener on 127.0.0.1 and a connection it accepted", procNetTCP, 8128, []netSocket{
			sock("127.0.0.1:8128", tcpListen, 2709452),
			sock("127.0.0.1:8128", 0x01, 2709454),
		}},
		{"tcp wildcard", procNetTCP, 8126, []netSocket{sock("0.0.0.0:8126", tcpListen, 2709448)}},
		{"tcp none", procNetTCP, 9999, nil},
		{"tcp6 wildcard", procNetTCP6, 8123, []netSocket{sock("[::]:8123", tcpListen, 2709445)}},
		{"tcp6 v4-mapped", procNetTCP6, 8132, []netSocket{sock("[::ffff:127.0.0.1]:8132", tcpListen, 2709458)}},
		{"tcp6 loopback, connections and a global address", procNetTCP6, 8127, []netSocket{
			sock("[::1]:8127", tcpListen, 2709449),
			sock("[::1]:8127", 0x01, 2709451),
			sock("[2001:db8::a0:1]:8127", tcpListen, 2709460),
		}},
		{"udp", procNetUDP, 8129, []netSocket{sock("127.0.0.1:8129", 0x07, 2709455)}},
		{"udp6 bound and connected", procNetUDP6, 8130, []netSocket{sock("[::]:8130", 0x07, 2709456)}},
		{"udp6 connected socket's own port", procNetUDP6, 8131, []netSocket{sock("[::1]:8131", 0x01, 2709457)}},
		{"header only", strings.SplitAfter(procNetTCP, "\n")[0], 8128, nil},
		{"blank lines", strings.Replace(procNetUDP, "\n", "\n\n  \n", -1), 8129, []netSocket{sock("127.0.0.1:8129", 0x07, 2709455)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcNet([]byte(tt.in), binary.LittleEndian, tt.port)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("parseProcNet(port %d) = %v, %v; want %v", tt.port, got, err, tt.want)
			}
		})
	}
}

func TestParseProcNetErrors(t *testing.T) {
	const header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	const rest = " 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1512 1\n"
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "line 1: want a header naming local_address"},
		{"no header", "   0: 0100007F:1FC0" + rest, "line 1: want a header"},
		{"few columns", header + "   0: 0100007F:1FC0 00000000:0000 0A\n", "line 2: 4 columns: want 10 or more"},
		{"no port", header + "   0: 0100007F" + rest, "line 2: local_address \"0100007F\": want HEX_ADDR:HEX_PORT"},
		{"bad port", header + "   0: 0100007F:1FXY" + rest, "line 2: local port \"1FXY\""},
		{"long port", header + "   0: 0100007F:11FC0" + rest, "line 2: local port \"11FC0\""},
		{"short address", header + "   0: 100007F:1FC0" + rest, "line 2: local address \"100007F\": want 8 or 32 hex digits"},
		{"bad address", header + "   0: 0100007G:1FC0" + rest, "line 2: local address \"0100007G\""},
		{"bad state", header + "   0: 0100007F:1FC0 00000000:0000 0AB 00000000:00000000 00:00000000 00000000 0 0 1512 1\n", "line 2: st \"0AB\""},
		{"bad inode", header + "   0: 0100007F:1FC0 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 -1 1\n", "line 2: inode \"-1\""},
		{"second row", header + "   0: 0100007F:1FC0" + rest + "   1: x" + rest, "line 3: local_address \"x\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcNet([]byte(tt.in), binary.LittleEndian, 8128)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseProcNet = %v, %v; want error containing %q", got, err, tt.wantErr)
			}
		})
	}
}

// On a big-endian machine the kernel prints the address bytes in order.
func TestParseProcNetAddrOrder(t *testing.T) {
	tests := []struct {
		hex   string
		order binary.ByteOrder
		want  string
	}{
		{"0100007F", binary.LittleEndian, "127.0.0.1"},
		{"7F000001", binary.BigEndian, "127.0.0.1"},
		{"00000000000000000000000001000000", binary.LittleEndian, "::1"},
		{"00000000000000000000000000000001", binary.BigEndian, "::1"},
		{"20010DB8000000000000000000A00001", binary.BigEndian, "2001:db8::a0:1"},
	}
	for _, tt := range tests {
		got, err := parseProcNetAddr([]byte(tt.hex), tt.order)
		if err != nil || got != netip.MustParseAddr(tt.want) {
			t.Errorf("parseProcNetAddr(%s, %v) = %v, %v; want %s", tt.hex, tt.order, got, err, tt.want)
		}
	}
}

func FuzzParseProcNet(f *testing.F) {
	for _, seed := range []string{procNetTCP, procNetTCP6, procNetUDP, procNetUDP6, "", "local_address\n0: :", "local_address\n0: 0100007F:1FC0 a b c d e f g h"} {
		f.Add([]byte(seed), uint16(8128))
	}
	f.Fuzz(func(t *testing.T, data []byte, port uint16) {
		socks, err := parseProcNet(data, binary.NativeEndian, port)
		if err != nil {
			return
		}
		for _, s := range socks {
			if s.local.Port() != port || !s.local.Addr().IsValid() {
				t.Errorf("parseProcNet(port %d) returned %+v", port, s)
			}
		}
	})
}
