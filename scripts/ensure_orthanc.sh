#!/bin/sh
# Install Orthanc and its DICOMweb plugin (Debian packages) when they are missing.
# Used by the test command: the PACS tests start a private Orthanc on loopback.
# No-op when both are present. Needs root (or sudo) and apt-get.
set -eu

plugin_present() {
    [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || [ -f /usr/lib/orthanc/libOrthancDicomWeb.so ]
}

if { [ -x /usr/sbin/Orthanc ] || command -v Orthanc >/dev/null 2>&1; } && plugin_present; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_orthanc: Orthanc is missing and apt-get is not available; install orthanc and orthanc-dicomweb by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure_orthanc: installing orthanc needs root; run as root or install sudo" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=300 orthanc orthanc-dicomweb
# the package enables a system service; the tests run their own private instance instead
