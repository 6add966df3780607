"""Generate a few real DICOM instances with pydicom and store them in an Orthanc over REST."""

from __future__ import annotations

import io

import requests

INSTANCES_PER_HOST = 3


def make_instance(host: str, number: int) -> bytes:
    """A small, valid CT instance whose UIDs are derived from (host, number), so re-seeding is idempotent."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    study = generate_uid(entropy_srcs=["orthanc-harden-lab", host, "study"])
    series = generate_uid(entropy_srcs=["orthanc-harden-lab", host, "series"])
    sop = generate_uid(entropy_srcs=["orthanc-harden-lab", host, "instance", str(number)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = "LAB^PHANTOM", f"OHLAB-{host}"
    ds.StudyDescription, ds.Modality = "orthanc-harden lab seed", "CT"
    ds.SeriesNumber, ds.InstanceNumber = 1, number
    ds.Rows = ds.Columns = 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = bytes((i * 7 + number) % 256 for i in range(16 * 16 * 2))
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def seed(base_url: str, host: str, auth: tuple[str, str] | None = None, timeout: float = 30) -> list[str]:
    """Upload the host's seed instances; return Orthanc's instance IDs (sorted)."""
    ids = []
    for number in range(1, INSTANCES_PER_HOST + 1):
        response = requests.post(f"{base_url}/instances", data=make_instance(host, number), auth=auth,
                                 headers={"Content-Type": "application/dicom"}, timeout=timeout)
        response.raise_for_status()
        ids.append(response.json()["ID"])
    return sorted(ids)
