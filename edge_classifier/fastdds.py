"""Which Fast DDS profile file the package's nodes load, and through which variable.

Fast DDS 3 (ROS 2 Kilted and later) reads FASTDDS_DEFAULT_PROFILES_FILE and spells its XML
elements in snake_case (`heartbeat_period`); Fast DDS 2 (Humble, Jazzy) reads only
FASTRTPS_DEFAULT_PROFILES_FILE and spells them in camelCase (`heartbeatPeriod`). Each
version refuses a file with the other's spelling whole (every setting in it is lost), and
Kilted's rmw also loads a file named by the old variable: so there is one file per version,
named by the one variable that version reads.
"""
import os
import re

# Fast DDS major version -> (the variable it reads its profiles file from, the package's
# network profile in its spelling); any version but 2 is taken as 3
BY_VERSION = {3: ('FASTDDS_DEFAULT_PROFILES_FILE', 'fastdds_network.xml'),
              2: ('FASTRTPS_DEFAULT_PROFILES_FILE', 'fastdds_network_humble_jazzy.xml')}
PROFILE_VARS = tuple(var for var, _ in BY_VERSION.values())
DISTRO_MAJOR = {'humble': 2, 'iron': 2, 'jazzy': 2}   # the distros on Fast DDS 2


def major_version(maps=None, environ=None):
    """The major version of the Fast DDS this process's rclpy runs on (2, 3, ...): from the
    library the rmw maps (rclpy's import loads it), else from ROS_DISTRO; None when neither
    tells (rclpy on another RMW_IMPLEMENTATION, say)."""
    environ = os.environ if environ is None else environ
    if maps is None:
        try:
            from rclpy.impl.implementation_singleton import rclpy_implementation  # noqa: F401
            with open('/proc/self/maps') as f:
                maps = f.read()
        except (ImportError, OSError):
            maps = ''
    found = re.search(r'/lib(?:fastdds|fastrtps)\.so\.(\d+)', maps)
    if found:
        return int(found.group(1))
    distro = environ.get('ROS_DISTRO', '')
    if distro:
        return DISTRO_MAJOR.get(distro, 3)
    return None


def _settings(major):
    """BY_VERSION's row for Fast DDS `major` (2, else 3: None too)."""
    return BY_VERSION[2 if major == 2 else 3]


def profile_var(major):
    """The environment variable Fast DDS `major` reads its profiles file from."""
    return _settings(major)[0]


def network_profile(config_dir, major):
    """The package's network profile (shared memory for large frames, a UDP receive buffer,
    quick repair of lost datagrams) for Fast DDS `major`."""
    return config_dir / _settings(major)[1]


def profile_env(path, major, environ):
    """`environ` with `path` as the profiles file of Fast DDS `major`, and the other
    version's variable removed (Kilted's rmw would load that file too)."""
    env = {k: v for k, v in environ.items() if k not in PROFILE_VARS}
    env[profile_var(major)] = str(path)
    return env


def user_chose_profile(environ):
    """A profiles file the user set for either version: the package loads none of its own."""
    return any(var in environ for var in PROFILE_VARS)
