"""A name-to-object registry for the extensible families: corruptions, slices, calibrators, CAM methods."""

from dermaudit.exceptions import RegistryError


class Registry:
    """Map names to registered objects.

    Registering a name twice raises, and looking up an unknown name raises with the
    list of valid names.

    Parameters
    ----------
    family : str
        What the registry holds, used in error messages ("corruption", "slice").
    """

    def __init__(self, family):
        self.family = family
        self._entries = {}

    def register(self, name, **attributes):
        """Return a decorator that registers an object under `name`.

        Keyword `attributes` are set on the object (for example ``kind="domain_shift"``).
        """

        def decorator(obj):
            if name in self._entries:
                raise RegistryError(f"{self.family} {name!r} is already registered; choose another name.")
            for key, value in attributes.items():
                setattr(obj, key, value)
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name):
        """Return the object registered as `name`."""
        try:
            return self._entries[name]
        except KeyError:
            valid = ", ".join(sorted(self._entries))
            raise RegistryError(f"unknown {self.family} {name!r}; valid names: {valid}.") from None

    def names(self):
        """Return the registered names in registration order."""
        return list(self._entries)

    def __contains__(self, name):
        return name in self._entries

    def __iter__(self):
        return iter(self._entries)

    def __len__(self):
        return len(self._entries)
