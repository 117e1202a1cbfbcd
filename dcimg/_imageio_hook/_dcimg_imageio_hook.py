"""Start-up hook that lets ``imageio`` read DCIMG files without ``import dcimg``.

imageio lists its plugins in two tables of :mod:`imageio.config`
(``known_plugins`` and ``known_extensions``) and has no entry-point mechanism
through which another package could add one.  dcimg therefore installs a
one-line file, ``dcimg-imageio.pth``, into ``site-packages``; Python runs it at
start-up, and it imports this module and calls :func:`install`.

:func:`install` only puts a small finder at the front of :data:`sys.meta_path`.
The finder ignores every import except that of ``imageio.config``; when that
module is imported, the finder lets it execute as usual, then adds dcimg's
plugin to the two tables (:func:`register`) and removes itself.  Registering
imports nothing either: imageio imports the plugin module
(:mod:`dcimg._imageio`, and with it NumPy and the reader) only when it first
opens a ``.dcimg`` file.  At start-up this module uses only :mod:`os` and
:mod:`sys`, which the interpreter has already loaded.

Setting the environment variable ``DCIMG_NO_IMAGEIO_HOOK`` to ``1`` (any value
but ``""``, ``0``, ``false``, ``no`` or ``off``) turns the start-up hook off;
``import dcimg`` still registers the plugin.
"""

import os
import sys

# ``typing`` costs more to import than this whole module: the names below are
# only for type checkers.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__all__ = [
    "CONFIG_MODULE",
    "DISABLE_ENV",
    "EXTENSION",
    "PLUGIN_CLASS",
    "PLUGIN_MODULE",
    "PLUGIN_NAME",
    "disabled",
    "install",
    "installed",
    "register",
    "uninstall",
]

#: Name of the plugin in ``imageio.config.known_plugins`` (``plugin="DCIMG"``).
PLUGIN_NAME = "DCIMG"
#: Module and class that imageio imports when it first uses the plugin.
PLUGIN_MODULE = "dcimg._imageio"
PLUGIN_CLASS = "DCIMGPlugin"
#: File extension (lower case, as imageio compares it) that the plugin reads.
EXTENSION = ".dcimg"
#: Environment variable that turns the start-up hook off.
DISABLE_ENV = "DCIMG_NO_IMAGEIO_HOOK"
#: The imageio module whose import triggers the registration.
CONFIG_MODULE = "imageio.config"

_FALSE_WORDS = ("", "0", "false", "no", "off")


def disabled() -> bool:
    """Tell whether :data:`DISABLE_ENV` turns the start-up hook off.

    Returns
    -------
    bool
        True when the variable is set to anything but ``""``, ``0``, ``false``,
        ``no`` or ``off`` (in any letter case).
    """
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in _FALSE_WORDS


def _config_type(config: "ModuleType") -> type:
    """Imageio's ``PluginConfig``, with a loading error that names dcimg.

    When a plugin cannot be imported, imageio suggests
    ``pip install imageio[<install_name>]``, an extra that does not exist for
    a plugin that comes with another package: say first what is wrong.
    """
    base = config.PluginConfig

    class DCIMGPluginConfig(base):  # type: ignore[misc,valid-type]
        @property
        def plugin_class(self) -> type:
            try:
                plugin_class: type = base.plugin_class.fget(self)
                return plugin_class
            except ImportError as exc:
                import warnings

                warnings.warn(
                    f"imageio's DCIMG plugin comes with the dcimg package and "
                    f"could not be loaded: {exc} (imageio has no dcimg extra; "
                    'the package installs with "pip install dcimg")',
                    RuntimeWarning,
                    stacklevel=2,
                )
                raise

    return DCIMGPluginConfig


def register(config: "ModuleType | None" = None) -> None:
    """Add dcimg's plugin to imageio's plugin and extension tables.

    The plugin becomes ``known_plugins["DCIMG"]``, and ``"DCIMG"`` is put first
    in the priority list of every format registered for ``.dcimg`` (a format
    is created when there is none).  Calling this again changes nothing.

    Parameters
    ----------
    config : module, optional
        The ``imageio.config`` module; imported when omitted.
    """
    if config is None:
        import imageio.config as imageio_config

        config = imageio_config
    plugins = config.known_plugins
    if PLUGIN_NAME not in plugins:
        plugins[PLUGIN_NAME] = _config_type(config)(
            name=PLUGIN_NAME,
            class_name=PLUGIN_CLASS,
            module_name=PLUGIN_MODULE,
            install_name="dcimg",
        )
    formats = config.known_extensions.setdefault(EXTENSION, [])
    if not formats:
        fmt = config.FileExtension(
            name="Hamamatsu DCIMG",
            extension=EXTENSION,
            priority=[PLUGIN_NAME],
            description="Image stacks of Hamamatsu sCMOS cameras (HCImage, "
            "DCAM), read by the dcimg package",
            volume_support=True,
        )
        formats.append(fmt)
        listing = getattr(config, "extension_list", None)
        if isinstance(listing, list) and fmt not in listing:
            listing.append(fmt)
            listing.sort(key=lambda item: item.extension)
    for fmt in formats:
        # ``default_priority`` is what ``FileExtension.reset()`` restores.
        for attribute in ("priority", "default_priority"):
            order = getattr(fmt, attribute, None)
            if isinstance(order, list) and order[:1] != [PLUGIN_NAME]:
                if PLUGIN_NAME in order:
                    order.remove(PLUGIN_NAME)
                order.insert(0, PLUGIN_NAME)


def _config_ready(config: "ModuleType") -> bool:
    names = ("known_plugins", "known_extensions", "PluginConfig", "FileExtension")
    return all(hasattr(config, name) for name in names)


def _register_quietly(config: "ModuleType") -> None:
    """Register, turning a failure into a warning: imageio must still import."""
    try:
        register(config)
    except Exception as error:  # noqa: BLE001 - an imageio release we don't know
        import warnings

        warnings.warn(
            f"dcimg could not register its imageio plugin ({error!r}); "
            "use dcimg.DCIMGFile to read DCIMG files",
            RuntimeWarning,
            stacklevel=2,
        )


class _RegisteringLoader:
    """Loader of ``imageio.config`` that registers the plugin after executing.

    Every attribute other than the two loader methods is the original
    loader's, and the original is put back on the module once it has run, so
    the module looks exactly as if it had been imported without the hook.
    """

    def __init__(self, loader: object) -> None:
        self._loader = loader

    def __getattr__(self, name: str) -> object:
        return getattr(self._loader, name)

    def create_module(self, spec: "ModuleSpec") -> "ModuleType | None":
        create = getattr(self._loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: "ModuleType") -> None:
        try:
            self._loader.exec_module(module)  # type: ignore[attr-defined]
        finally:
            if getattr(module, "__loader__", None) is self:
                module.__loader__ = self._loader
            spec = getattr(module, "__spec__", None)
            if spec is not None and spec.loader is self:
                spec.loader = self._loader
        # Only once the module has executed: when it fails, the finder stays
        # in place for the next attempt.
        _register_quietly(module)
        uninstall()


class _ImageioConfigFinder:
    """Meta-path finder that waits for ``imageio.config`` to be imported.

    It finds nothing itself: it asks the finders after it for the module's
    spec and wraps the spec's loader in :class:`_RegisteringLoader`.
    """

    def __repr__(self) -> str:
        return f"<dcimg imageio hook waiting for {CONFIG_MODULE}>"

    def find_spec(
        self,
        fullname: str,
        path: object = None,
        target: object = None,
    ) -> "ModuleSpec | None":
        if fullname != CONFIG_MODULE:
            return None
        finders = sys.meta_path
        if self in finders:
            finders = finders[finders.index(self) + 1 :]
        for finder in finders:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        # A duck-typed loader: subclassing importlib.abc.Loader would import
        # importlib.abc at every interpreter start-up (see the module notes).
        spec.loader = _RegisteringLoader(loader)  # type: ignore[assignment]
        return spec


def installed() -> bool:
    """Tell whether the finder is waiting in :data:`sys.meta_path`.

    Returns
    -------
    bool
        True until ``imageio.config`` is imported (or :func:`uninstall`).
    """
    return any(isinstance(finder, _ImageioConfigFinder) for finder in sys.meta_path)


def install(*, force: bool = False) -> bool:
    """Make the plugin available to imageio, now or as soon as imageio loads.

    When ``imageio.config`` has already been imported the plugin is
    registered at once; otherwise the finder is placed at the front of
    :data:`sys.meta_path` (once) to register it when the module is imported.

    Parameters
    ----------
    force : bool, default False
        Ignore :data:`DISABLE_ENV` (``import dcimg`` uses this).

    Returns
    -------
    bool
        False when the hook is disabled and nothing was done.
    """
    if not force and disabled():
        return False
    config = sys.modules.get(CONFIG_MODULE)
    if config is not None and _config_ready(config):
        _register_quietly(config)
    elif not installed():
        sys.meta_path.insert(0, _ImageioConfigFinder())
    return True


def uninstall() -> None:
    """Remove the finder from :data:`sys.meta_path` (a registration stays)."""
    sys.meta_path[:] = [
        finder
        for finder in sys.meta_path
        if not isinstance(finder, _ImageioConfigFinder)
    ]
