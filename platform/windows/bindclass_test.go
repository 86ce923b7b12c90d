package windows

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/portbroker/portbroker/broker"
)

func TestClassifyBind(t *testing.T) {
	excluded := []broker.PortRange{
		{First: 4294, Last: 9783, Source: SourceExcluded},
		{First: 50000, Last: 50059, Source: SourceAdministered},
	}
	wrap := func(errno error) error {
		// What net.Listen returns on Windows.
		return fmt.Errorf("listen tcp4 0.0.0.0:8000: %w", os.NewSyscallError("bind", errno))
	}
	tests := []struct {
		name     string
		network  string
		port     uint16
		err      error
		held     bool
		want     broker.BindClass
		inDetail string
		inFix    string
	}{
		{"in use", "tcp4", 8000, wrap(wsaEADDRINUSE), false, broker.BindInUse, "WSAEADDRINUSE", "brokerctl who 8000"},
		{"in use, holder known", "udp6", 3000, wrap(wsaEADDRINUSE), true, broker.BindInUse, "10048", "choose another port"},
		{"excluded by WinNAT", "tcp4", 8000, wrap(wsaEACCES), false, broker.BindExcluded, "excluded range 4294-9783", "net stop winnat"},
		{"excluded wins over held", "tcp6", 4294, wrap(wsaEACCES), true, broker.BindExcluded, "Hyper-V", "protocol=tcp startport=4294 numberofports=1"},
		{"excluded udp fix names udp", "udp4", 9783, wrap(wsaEACCES), false, broker.BindExcluded, "4294-9783", "protocol=udp"},
		{"administered", "tcp4", 50010, wrap(wsaEACCES), false, broker.BindExcluded, "administrator", "delete excludedportrange protocol=tcp"},
		{"exclusive use", "tcp4", 9784, wrap(wsaEACCES), true, broker.BindExclusive, "exclusive use", "brokerctl who 9784"},
		{"permission", "tcp4", 80, wrap(wsaEACCES), false, broker.BindPermission, "denied", "Choose another port"},
		{"permission just below a range", "tcp4", 4293, wrap(wsaEACCES), false, broker.BindPermission, "10013", "security software"},
		{"address not available", "tcp6", 8000, wrap(wsaEADDRNOTAVAIL), false, broker.BindOther, "WSAEADDRNOTAVAIL", ""},
		{"no errno", "tcp4", 8000, errors.New("socket: too many open files"), false, broker.BindOther, "too many open files", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classifyBind(tt.network, tt.port, tt.err, excluded, tt.held)
			if got.Class != tt.want {
				t.Errorf("class = %v, want %v (detail %q)", got.Class, tt.want, got.Detail)
			}
			if got.Port != tt.port || got.Network != tt.network {
				t.Errorf("port, network = %d, %q, want %d, %q", got.Port, got.Network, tt.port, tt.network)
			}
			if !strings.Contains(got.Detail, tt.inDetail) {
				t.Errorf("detail %q does not contain %q", got.Detail, tt.inDetail)
			}
			if !strings.Contains(got.Fix, tt.inFix) {
				t.Errorf("fix %q does not contain %q", got.Fix, tt.inFix)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("bind error does not wrap %v", tt.err)
			}
			if tt.want != broker.BindOther && (got.Fix == "" || strings.Count(got.Fix, ". ") > 0 || !strings.HasSuffix(got.Fix, ".")) {
				t.Errorf("fix %q is not one sentence", got.Fix)
			}
		})
	}
}
