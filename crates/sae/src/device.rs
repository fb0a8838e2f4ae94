//! Choosing where tensors live, at run time.
//!
//! burn 0.22 picks the backend through the [`Device`] value rather than a type
//! parameter, so one build of kibitzer can train on the CPU or on a GPU. Which
//! backends exist is decided by cargo features (`flex` by default, `cuda` and
//! `wgpu` opt-in); asking for one that was not compiled in is an error that
//! says which feature to enable.

use burn::tensor::Device;
use std::fmt;
use std::str::FromStr;

/// A device named on the command line or in a config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// burn's pure-Rust CPU backend (`flex`), the default.
    Cpu,
    /// A CUDA GPU by index (`cuda` or `cuda:1`).
    Cuda(usize),
    /// The default wgpu adapter (Vulkan, Metal, DX12 or a software driver).
    Wgpu,
}

impl Default for DeviceChoice {
    fn default() -> Self {
        DeviceChoice::Cpu
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => write!(f, "cpu"),
            DeviceChoice::Cuda(0) => write!(f, "cuda"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Wgpu => write!(f, "wgpu"),
        }
    }
}

/// A device that cannot be used in this build or was misspelled.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The name is none of `cpu`, `cuda`, `cuda:N`, `wgpu`.
    #[error("unknown device {0:?}: expected cpu, cuda, cuda:N or wgpu")]
    Unknown(String),
    /// The backend exists but this binary was built without its feature.
    #[error(
        "device {device} needs kibitzer built with the `{feature}` feature (cargo build --features {feature})"
    )]
    NotCompiled {
        /// The device asked for.
        device: DeviceChoice,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// The backend is compiled in, but this machine cannot run it.
    #[error("device {device} cannot be used here: {reason}")]
    Unavailable {
        /// The device asked for.
        device: DeviceChoice,
        /// What is missing, and what to do.
        reason: String,
    },
}

/// Whether CUDA device `index` can be started: the driver library
/// (`libcuda.so`, from the NVIDIA driver) and NVRTC (`libnvrtc.so`, from the
/// CUDA toolkit or its pip wheel) load, and the driver sees the device.
/// burn loads them lazily and panics in a worker thread when they are
/// missing, so this is asked first.
#[cfg(feature = "cuda")]
fn check_cuda(index: usize) -> Result<(), String> {
    // SAFETY: loading a shared library runs its initialisers; these are the
    // libraries burn's CUDA backend loads anyway.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(
            "the CUDA driver library (libcuda.so.1) is not installed or not on \
             LD_LIBRARY_PATH: install the NVIDIA driver, or use --device cpu or wgpu"
                .into(),
        );
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(
            "NVRTC (libnvrtc.so, CUDA's runtime compiler) is not installed or not on \
             LD_LIBRARY_PATH: install the CUDA toolkit (or the nvidia-cuda-nvrtc wheel) and \
             add its lib directory to LD_LIBRARY_PATH"
                .into(),
        );
    }
    cudarc::driver::result::init().map_err(|e| format!("the CUDA driver does not start: {e}"))?;
    let count = cudarc::driver::result::device::get_count()
        .map_err(|e| format!("the CUDA driver cannot count its devices: {e}"))?;
    let count = usize::try_from(count).unwrap_or(0);
    match count {
        0 => return Err("the CUDA driver sees no device".into()),
        _ if index >= count => {
            return Err(format!(
                "the CUDA driver sees {count} device(s), cuda:0 to cuda:{}; there is no cuda:{index}",
                count - 1
            ));
        }
        _ => {}
    }
    Ok(())
}

impl FromStr for DeviceChoice {
    type Err = DeviceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda(0)),
            "wgpu" | "vulkan" => Ok(DeviceChoice::Wgpu),
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(i)) => Ok(DeviceChoice::Cuda(i)),
                _ => Err(DeviceError::Unknown(s.to_string())),
            },
        }
    }
}

impl DeviceChoice {
    /// The burn device, or an error naming the missing cargo feature.
    pub fn device(self) -> Result<Device, DeviceError> {
        match self {
            #[cfg(feature = "flex")]
            DeviceChoice::Cpu => Ok(Device::flex()),
            #[cfg(not(feature = "flex"))]
            DeviceChoice::Cpu => Err(DeviceError::NotCompiled {
                device: self,
                feature: "flex",
            }),
            #[cfg(feature = "cuda")]
            DeviceChoice::Cuda(i) => {
                check_cuda(i).map_err(|reason| DeviceError::Unavailable {
                    device: self,
                    reason,
                })?;
                Ok(Device::cuda(i))
            }
            #[cfg(not(feature = "cuda"))]
            DeviceChoice::Cuda(_) => Err(DeviceError::NotCompiled {
                device: self,
                feature: "cuda",
            }),
            #[cfg(feature = "wgpu")]
            DeviceChoice::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(not(feature = "wgpu"))]
            DeviceChoice::Wgpu => Err(DeviceError::NotCompiled {
                device: self,
                feature: "wgpu",
            }),
        }
    }
}

/// Whether tensors on `device` live in host memory (burn's `flex` backend).
///
/// Some kernels are much faster done on the host than through burn's generic
/// op (per-row top-k is a full sort in burn; `select_nth_unstable` is linear),
/// but only when reading the tensor back costs nothing, i.e. on the CPU.
/// burn 0.22 exposes the backend only through the device's `Debug` form.
pub fn is_host(device: &Device) -> bool {
    format!("{device:?}").contains("Flex")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Cpu);
        assert_eq!(
            "CUDA".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(0)
        );
        assert_eq!(
            "cuda:3".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Cuda(3)
        );
        assert_eq!("wgpu".parse::<DeviceChoice>().unwrap(), DeviceChoice::Wgpu);
        let err = "tpu".parse::<DeviceChoice>().unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
        assert!("cuda:x".parse::<DeviceChoice>().is_err());
    }

    #[cfg(feature = "flex")]
    #[test]
    fn cpu_device_is_host() {
        assert!(is_host(&DeviceChoice::Cpu.device().unwrap()));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_feature_is_named() {
        let err = DeviceChoice::Cuda(0).device().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
