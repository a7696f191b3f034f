"""Two test hosts on one machine: network namespaces joined by a veth pair (root only).

    with TestHosts() as hosts:                  # hosts 'a' (10.213.N.1) and 'b' (10.213.N.2)
        cam = hosts.popen('a', [python, '-m', 'edge_classifier.tools.sample_camera', ...])
        node = hosts.popen('b', node_command(...))
        hosts.limit('100mbit')                  # tc tbf on both ends of the link
        hosts.lose(1, 'b')                      # nftables: drop 1 % of UDP datagrams into b
        hosts.cut(); hosts.restore()            # the cable pulled and plugged back

Each host has only its loopback and its end of the veth: a process run in it cannot reach
any other network, and nothing it sends leaves the machine. Its processes see each other
over Fast DDS on UDPv4 only (FASTDDS_BUILTIN_TRANSPORTS=UDPv4 and, unless `profile` names
one, a UDPv4-only Fast DDS profile: two namespaces of one machine would otherwise still
share memory, which two computers do not), with discovery over the veth (a multicast
route, ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET: the subnet is the veth's /30).

The namespaces are removed on close (and their veth with them); a name left behind by a
killed run is removed before it is reused.
"""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import fastdds
from . import spawn

UDP_ONLY_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors><transport_descriptor>
    <transport_id>udp_only</transport_id><type>UDPv4</type>
  </transport_descriptor></transport_descriptors>
  <participant profile_name="udp_only" is_default_profile="true"><rtps>
    <userTransports><transport_id>udp_only</transport_id></userTransports>
    <useBuiltinTransports>false</useBuiltinTransports>
  </rtps></participant>
</profiles></dds>
"""


def unavailable():
    """Why test hosts cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return 'test hosts need root (network namespaces); CI runs as root'
    if shutil.which('ip') is None:
        return 'test hosts need iproute2 (`ip`): make net-tools'
    probe = f'ec_probe_{os.getpid()}'
    made = subprocess.run(['ip', 'netns', 'add', probe], capture_output=True, text=True)
    subprocess.run(['ip', 'netns', 'del', probe], capture_output=True)
    if made.returncode != 0:
        return f'cannot make a network namespace here: {made.stderr.strip()}'
    return None


def can_lose():
    """Why datagrams cannot be dropped here (None when nftables is installed)."""
    return None if shutil.which('nft') else 'dropping datagrams needs nftables: make net-tools'


def _run(*argv, check=True):
    done = subprocess.run(list(argv), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f'{" ".join(argv)}: {done.stderr.strip() or done.returncode}')
    return done


class TestHosts:
    """Hosts 'a' and 'b'; `profile`: the Fast DDS profile file both use (default: UDPv4
    only, Fast DDS's own defaults otherwise)."""

    __test__ = False   # not a pytest class

    def __init__(self, profile=None, subnet=None):
        tag = os.getpid() % 10000
        self.subnet = subnet if subnet is not None else 1 + os.getpid() % 250
        self.ns = {'a': f'eca{tag}', 'b': f'ecb{tag}'}
        self.dev = {'a': f'veca{tag}', 'b': f'vecb{tag}'}
        self.addr = {'a': f'10.213.{self.subnet}.1', 'b': f'10.213.{self.subnet}.2'}
        self._tmp = tempfile.TemporaryDirectory(prefix='testhosts_')
        if profile is None:
            profile = Path(self._tmp.name) / 'udp_only.xml'
            profile.write_text(UDP_ONLY_PROFILE)
        self.profile = str(profile)
        self._fastdds = fastdds.major_version()   # the processes run on the same Fast DDS
        self._made = False

    # ---- the link ------------------------------------------------------------------------
    def open(self):
        for name in self.ns.values():
            _run('ip', 'netns', 'del', name, check=False)   # left by a killed run
        for name in self.ns.values():
            _run('ip', 'netns', 'add', name)
        self._made = True
        _run('ip', 'link', 'add', self.dev['a'], 'netns', self.ns['a'], 'type', 'veth',
             'peer', 'name', self.dev['b'], 'netns', self.ns['b'])
        for host in 'ab':
            self.ip(host, 'link', 'set', 'lo', 'up')
            self.ip(host, 'addr', 'add', f'{self.addr[host]}/30', 'dev', self.dev[host])
            # namespaced since Linux 6.8: large socket buffers for camera frames
            self.sysctl(host, 'net.core.rmem_max=33554432', 'net.core.wmem_max=33554432')
        self.restore()
        return self

    def ip(self, host, *args, check=True):
        return _run('ip', '-n', self.ns[host], *args, check=check)

    def sysctl(self, host, *settings):
        return _run('ip', 'netns', 'exec', self.ns[host], 'sysctl', '-q', '-w', *settings,
                    check=False)

    def cut(self):
        """The cable pulled: both ends lose carrier; datagrams sent meanwhile are lost."""
        self.ip('a', 'link', 'set', self.dev['a'], 'down')

    def restore(self):
        """The cable plugged (back) in: links up, the multicast route for discovery."""
        for host in 'ab':
            self.ip(host, 'link', 'set', self.dev[host], 'up')
        for host in 'ab':
            self.ip(host, 'route', 'replace', '224.0.0.0/4', 'dev', self.dev[host])

    def limit(self, rate='100mbit'):
        """A link of `rate` each way (a token bucket on both ends' egress)."""
        for host in 'ab':
            self.ip(host, 'link', 'set', self.dev[host], 'up')
            _run('ip', 'netns', 'exec', self.ns[host], 'tc', 'qdisc', 'replace', 'dev',
                 self.dev[host], 'root', 'tbf', 'rate', rate, 'burst', '256kb', 'latency',
                 '50ms')

    def unlimit(self):
        """The link at full speed again (the token buckets removed)."""
        for host in 'ab':
            _run('ip', 'netns', 'exec', self.ns[host], 'tc', 'qdisc', 'del', 'dev',
                 self.dev[host], 'root', check=False)

    def lose(self, percent, host):
        """Drop `percent` % of the UDP datagrams arriving at `host` (nftables; 0: none)."""
        _run('ip', 'netns', 'exec', self.ns[host], 'nft', 'delete table inet ec_loss',
             check=False)
        if not percent:
            return
        script = ('table inet ec_loss {\n chain input {\n'
                  '  type filter hook input priority 0;\n'
                  f'  meta l4proto udp numgen random mod 100 < {int(percent)} drop\n }}\n}}\n')
        done = subprocess.run(['ip', 'netns', 'exec', self.ns[host], 'nft', '-f', '-'],
                              input=script, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f'nft in {self.ns[host]}: {done.stderr.strip()}')

    # ---- processes -----------------------------------------------------------------------
    def env(self, extra=None):
        """The environment of a process on a test host."""
        env = fastdds.profile_env(self.profile, self._fastdds, os.environ)
        env.update({'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4',
                    'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET', 'ROS_LOCALHOST_ONLY': '0',
                    'no_proxy': '*', 'NO_PROXY': '*'})
        env.update(extra or {})
        return env

    def command(self, host, argv):
        return ['ip', 'netns', 'exec', self.ns[host], *argv]

    def popen(self, host, argv, env=None, **kwargs):
        kwargs.setdefault('stdout', subprocess.PIPE)
        kwargs.setdefault('stderr', subprocess.PIPE)
        kwargs.setdefault('text', True)
        # `ip netns exec` execs the command itself: signals reach the process directly
        return spawn(self.command(host, argv), env=self.env(env), **kwargs)

    def close(self):
        if self._made:
            for name in self.ns.values():
                _run('ip', 'netns', 'del', name, check=False)
            self._made = False
        self._tmp.cleanup()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
