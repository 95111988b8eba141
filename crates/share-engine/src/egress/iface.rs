//! The interface `--interface` names: found by name or by an address it holds, its state
//! read from the kernel (`getifaddrs`), and watched so that the session can say when it goes
//! and comes back.

use std::ffi::{CStr, CString};
use std::net::IpAddr;

/// The interface every socket is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Its name (`SO_BINDTODEVICE` takes it).
    pub name: String,
    /// The address it was named by, when it was: sockets bind to it too.
    pub addr: Option<IpAddr>,
}

/// What the kernel says of an interface now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfState {
    pub index: u32,
    /// Administratively up and with a carrier.
    pub running: bool,
    pub addrs: Vec<IpAddr>,
}

impl Iface {
    /// `NAME` or `ADDR`: an address names the interface that holds it now.
    pub fn find(spec: &str) -> Result<Iface, String> {
        let spec = spec.trim();
        if let Ok(ip) = spec
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<IpAddr>()
        {
            let name = interfaces()
                .into_iter()
                .find(|(_, _, a)| *a == Some(ip))
                .map(|(n, _, _)| n)
                .ok_or_else(|| format!("no interface has the address {ip}"))?;
            return Ok(Iface {
                name,
                addr: Some(ip),
            });
        }
        if spec.is_empty() || spec.len() >= libc::IFNAMSIZ || spec.contains(['/', ' ', '\0']) {
            return Err(format!("`{spec}` is not an interface name or address"));
        }
        if index_of(spec).is_none() {
            return Err(format!("no interface named {spec}"));
        }
        Ok(Iface {
            name: spec.to_owned(),
            addr: None,
        })
    }

    /// Its state now (`None`: it does not exist).
    pub fn state(&self) -> Option<IfState> {
        let index = index_of(&self.name)?;
        let mut flags = 0;
        let mut addrs = Vec::new();
        for (name, f, addr) in interfaces() {
            if name == self.name {
                flags |= f;
                addrs.extend(addr);
            }
        }
        Some(IfState {
            index,
            running: flags & libc::IFF_UP as u32 != 0 && flags & libc::IFF_RUNNING as u32 != 0,
            addrs,
        })
    }

    /// Whether traffic can flow through it now: it exists, is up with a carrier, and holds
    /// an address (the one it was named by, if so).
    pub fn usable(&self, s: &IfState) -> bool {
        s.running
            && match self.addr {
                Some(a) => s.addrs.contains(&a),
                None => s.addrs.iter().any(|a| !is_link_local(*a)),
            }
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Every interface entry: its name, flags and address (`None` for the link-level entry).
fn interfaces() -> Vec<(String, u32, Option<IpAddr>)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free with freeifaddrs below; each
    // entry's pointers are valid until then, and are checked for null before use.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let ifa = &*p;
            p = ifa.ifa_next;
            if ifa.ifa_name.is_null() {
                continue;
            }
            let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            let addr = if ifa.ifa_addr.is_null() {
                None
            } else {
                match (*ifa.ifa_addr).sa_family as i32 {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        Some(IpAddr::from(
                            u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                        ))
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        Some(IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                }
            };
            out.push((name, ifa.ifa_flags, addr));
        }
        libc::freeifaddrs(head);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_found_by_name_and_by_address() {
        let by_name = Iface::find("lo").unwrap();
        assert_eq!(by_name.addr, None);
        let s = by_name.state().unwrap();
        assert!(s.addrs.contains(&"127.0.0.1".parse().unwrap()), "{s:?}");
        let by_addr = Iface::find("127.0.0.1").unwrap();
        assert_eq!(by_addr.name, "lo");
        assert!(Iface::find("no-such-if0").is_err());
        assert!(Iface::find("192.0.2.99").is_err());
        assert!(Iface::find("a/b").is_err());
    }
}
