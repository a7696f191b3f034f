"""The Fast DDS profiles the package ships: one per Fast DDS version, each loaded through
the variable its version reads, each parsed whole by the Fast DDS it is for (a file with
an element that version does not know is refused with every setting in it)."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from edge_classifier import fastdds, resources
from edge_classifier.ros_main import use_large_frame_profile

CONFIG = Path(__file__).resolve().parent.parent / 'config'
NS = '{http://www.eprosima.com}'
HEARTBEAT = {3: 'heartbeat_period', 2: 'heartbeatPeriod'}
# a process that makes a participant, a reliable writer and a reader: Fast DDS loads the
# profiles file (and complains about it on stderr) on the way
PARTICIPANT = '''
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('profile_check')
node.create_publisher(String, 'profile_check', 10)
node.create_subscription(String, 'profile_check', lambda m: None, 10)
node.destroy_node()
rclpy.shutdown()
print('participant made')
'''


def test_the_fast_dds_version_comes_from_the_library_rclpy_maps():
    assert fastdds.major_version(
        maps='7f00-7f01 r-xp 0 0:1 5 /opt/ros/kilted/lib/libfastdds.so.3.2.2\n') == 3
    assert fastdds.major_version(
        maps='7f00-7f01 r-xp 0 0:1 5 /opt/ros/jazzy/lib/libfastrtps.so.2.14.5\n') == 2
    # the library says it, whatever ROS_DISTRO claims
    assert fastdds.major_version(maps='/x/libfastrtps.so.2.6\n', environ={
        'ROS_DISTRO': 'kilted'}) == 2
    # no Fast DDS mapped: the distro tells; neither: nothing known
    assert fastdds.major_version(maps='', environ={'ROS_DISTRO': 'humble'}) == 2
    assert fastdds.major_version(maps='', environ={'ROS_DISTRO': 'jazzy'}) == 2
    assert fastdds.major_version(maps='', environ={'ROS_DISTRO': 'kilted'}) == 3
    assert fastdds.major_version(maps='/x/libddsc.so.0\n', environ={}) is None
    # and in this process: the rclpy the suite runs on is on Fast DDS 2 or 3
    assert fastdds.major_version() in (2, 3)


def test_each_version_gets_its_file_through_the_one_variable_it_reads():
    assert fastdds.profile_var(3) == 'FASTDDS_DEFAULT_PROFILES_FILE'
    assert fastdds.profile_var(2) == 'FASTRTPS_DEFAULT_PROFILES_FILE'
    assert fastdds.network_profile(CONFIG, 3) == CONFIG / 'fastdds_network.xml'
    assert fastdds.network_profile(CONFIG, 2) == CONFIG / 'fastdds_network_humble_jazzy.xml'
    # a process started with a profile names it by one variable only (Kilted's rmw loads a
    # FASTRTPS_ file too: two files would both be loaded)
    env = fastdds.profile_env('/p.xml', 2, {'FASTDDS_DEFAULT_PROFILES_FILE': '/old.xml',
                                            'PATH': '/bin'})
    assert env == {'FASTRTPS_DEFAULT_PROFILES_FILE': '/p.xml', 'PATH': '/bin'}
    env = fastdds.profile_env('/p.xml', 3, {'FASTRTPS_DEFAULT_PROFILES_FILE': '/old.xml'})
    assert env == {'FASTDDS_DEFAULT_PROFILES_FILE': '/p.xml'}


def test_the_nodes_load_the_shipped_profile_for_their_fast_dds_unless_the_user_chose_one(
        monkeypatch):
    for var in fastdds.PROFILE_VARS:
        monkeypatch.delenv(var, raising=False)
    major = fastdds.major_version()
    use_large_frame_profile()
    chosen = os.environ[fastdds.profile_var(major)]
    assert chosen == str(fastdds.network_profile(resources.config_dir(), major))
    other = [v for v in fastdds.PROFILE_VARS if v != fastdds.profile_var(major)]
    assert not any(v in os.environ for v in other)
    text = open(chosen).read()
    assert '<segment_size>67108864</segment_size>' in text   # whole frames on this host
    assert '<receiveBufferSize>' in text                      # bursts from another host
    assert f'<{HEARTBEAT[major]}>' in text                    # lost datagrams repaired soon
    for var in fastdds.PROFILE_VARS:   # the user's file, by either version's variable
        for v in fastdds.PROFILE_VARS:
            monkeypatch.delenv(v, raising=False)
        monkeypatch.setenv(var, '/the/users/own.xml')
        use_large_frame_profile()
        assert {v: os.environ.get(v) for v in fastdds.PROFILE_VARS} == {
            v: ('/the/users/own.xml' if v == var else None) for v in fastdds.PROFILE_VARS}


@pytest.mark.parametrize('major', [2, 3])
def test_both_files_hold_the_same_settings_in_their_versions_spelling(major):
    root = ET.parse(fastdds.network_profile(CONFIG, major)).getroot()
    profiles = root.find(f'{NS}profiles')
    segment = profiles.find(f'.//{NS}transport_descriptor[{NS}type="SHM"]/{NS}segment_size')
    assert segment.text == str(64 << 20)
    receive = profiles.find(f'.//{NS}transport_descriptor[{NS}type="UDPv4"]/'
                            f'{NS}receiveBufferSize')
    assert receive.text == str(32 << 20)
    writer = profiles.find(f'{NS}data_writer')
    assert writer.get('is_default_profile') == 'true'
    period = writer.find(f'{NS}times/{NS}{HEARTBEAT[major]}')
    seconds = int(period.find(f'{NS}sec').text) + int(period.find(f'{NS}nanosec').text) / 1e9
    assert 0 < seconds <= 0.05   # Fast DDS's default, 3 s, held results back 100-250 ms
    assert writer.find(f'{NS}times/{NS}{HEARTBEAT[5 - major]}') is None


def _load(path, major):
    """A participant of this process's Fast DDS (`major`) with `path` as its profiles file."""
    env = fastdds.profile_env(path, major, os.environ)
    done = subprocess.run([sys.executable, '-c', PARTICIPANT], env=env, capture_output=True,
                          text=True, timeout=120)
    assert 'participant made' in done.stdout, done.stderr
    return done.stdout + done.stderr   # Fast DDS 2 logs to stdout, Fast DDS 3 to stderr


def test_the_fast_dds_this_suite_runs_on_takes_its_file_whole_and_refuses_the_other():
    """make test runs this on Kilted (Fast DDS 3), make test-jazzy on Jazzy (Fast DDS 2):
    between them each file is loaded by the version it is for."""
    major = fastdds.major_version()
    ours = _load(fastdds.network_profile(CONFIG, major), major)
    assert 'XMLPARSER' not in ours and 'Error' not in ours, ours
    # the other version's spelling is refused, naming the file: why there are two
    theirs = fastdds.network_profile(CONFIG, 5 - major)
    refused = _load(theirs, major)
    assert 'XMLPARSER' in refused and str(theirs) in refused, refused
    assert 'Error' in refused and HEARTBEAT[5 - major] in refused, refused
