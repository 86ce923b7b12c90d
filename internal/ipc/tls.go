package ipc

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CertFile is the name of the daemon's TLS certificate in the state dir.
// Clients pin it: over loopback TCP they talk only to the process that
// holds its key, so the token never reaches whoever else binds the port.
const CertFile = "tls.crt"

// EnvCertFile names a certificate file a client pins instead of CertFile
// in $PORTBROKER_STATE_DIR or DefaultStateDir.
const EnvCertFile = "PORTBROKER_CERT_FILE"

// NewDaemonCert makes a fresh self-signed ECDSA P-256 certificate for
// loopback TCP and writes it (0644: it is no secret) to CertFile in
// stateDir, replacing the one a previous daemon left. The private key
// stays in memory: a new one each start, so a key read from an old
// daemon's memory or disk is worth nothing.
func NewDaemonCert(stateDir string) (tls.Certificate, string, error) {
	return newDaemonCert(stateDir, createPrivateTemp)
}

// NewServiceCert is NewDaemonCert for portbrokerd running as the Windows
// service: the users its pipe admits may read the certificate
// (serviceFileSDDL). Elsewhere it fails.
func NewServiceCert(stateDir string) (tls.Certificate, string, error) {
	return newDaemonCert(stateDir, createServiceTemp)
}

func newDaemonCert(stateDir string, create createTempFunc) (tls.Certificate, string, error) {
	path := filepath.Join(stateDir, CertFile)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, path, fmt.Errorf("daemon TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, path, fmt.Errorf("daemon TLS certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "portbrokerd"},
		// Clients pin the exact certificate, so its dates only need to
		// cover the daemon's life; skew between processes is harmless.
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(100 * 365 * 24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, path, fmt.Errorf("daemon TLS certificate: %w", err)
	}
	if err := replaceFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644, create); err != nil {
		return tls.Certificate{}, path, fmt.Errorf("write daemon certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, path, nil
}

// replaceFile writes data to a new file beside path and renames it into
// place, so a reader sees the old file or the new one, never a part, and
// a symlink planted at path is replaced, not followed. create makes the
// new file, with the access it chooses; perm then applies on Unix.
func replaceFile(path string, data []byte, perm os.FileMode, create createTempFunc) error {
	f, err := create(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(data)
	if err == nil && perm != 0o600 {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// serverTLS is the daemon's TLS configuration for loopback TCP.
func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"h2"},
	}
}

// clientTLS pins the daemon's certificate. It reads the certificate file
// at each handshake, so a client outlives a daemon restart that made a new
// one, and refuses any server that does not present exactly those bytes
// (and prove it holds their key, which TLS does), before any call, and so
// any token, is sent.
func clientTLS(addr string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		// The chain is not verified against roots: the pin below replaces
		// that check with a stricter one.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
			want, path, err := pinnedCert(addr)
			if err != nil {
				return err
			}
			if len(rawCerts) == 0 || !bytes.Equal(rawCerts[0], want) {
				return fmt.Errorf("the server on this port is not the portbrokerd whose certificate is %s (it presented another): refusing to send it the token", path)
			}
			return nil
		},
	}
}

// pinnedCert reads the certificate a client of addr pins: the file
// $PORTBROKER_CERT_FILE names, else CertFile in clientStateDir(addr).
func pinnedCert(addr string) (der []byte, path string, err error) {
	path = os.Getenv(EnvCertFile)
	if path == "" {
		dir, err := clientStateDir(addr)
		if err != nil {
			return nil, "", fmt.Errorf("daemon certificate: %w", err)
		}
		path = filepath.Join(dir, CertFile)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, path, fmt.Errorf("no daemon certificate at %s: a portbrokerd on loopback TCP writes it in its state dir; set %s or %s to find it", path, EnvStateDir, EnvCertFile)
	}
	if err != nil {
		return nil, path, fmt.Errorf("daemon certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" || !strings.HasPrefix(string(data), "-----BEGIN") {
		return nil, path, fmt.Errorf("daemon certificate %s is not a PEM certificate", path)
	}
	return block.Bytes, path, nil
}
