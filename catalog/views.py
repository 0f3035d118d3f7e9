"""The shop's pages: the product list (filters, search, pagination) and the product page."""
from django.apps import apps
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template import engines
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject
from django.utils.safestring import mark_safe
from django.views.generic import DetailView, ListView

from . import fragments
from .forms import LOOK_FILTER_LABELS, ProductFilterForm
from .models import Product

PAGE_SIZE = 24


def look_widget_enabled():
    """True when the recommender is installed and its ``buy_the_look`` template tags exist."""
    if not apps.is_installed("recommender"):
        return False
    try:
        return "buy_the_look" in engines["django"].engine.template_libraries
    except Exception:
        return False


class ProductListView(ListView):
    template_name = "catalog/product_list.html"
    context_object_name = "products"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        products = Product.objects.active()
        self.filter_form = ProductFilterForm(self.request.GET or None, products=products)
        return self.filter_form.filter(products).with_card_image()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = self.filter_form
        data = getattr(form, "cleaned_data", {})
        heading = "All products"
        if data.get("look"):
            heading = LOOK_FILTER_LABELS[data["look"]]
        if data.get("gender"):
            heading = f"{data['gender']} · {heading}" if data.get("look") else data["gender"]
        if data.get("q"):
            heading = f"Results for “{data['q']}”"
        context.update(filter_form=form, active_filters=form.active_filters(), heading=heading,
                       current_gender=data.get("gender", ""), current_look=data.get("look", ""))
        return context


class ProductDetailView(DetailView):
    template_name = "catalog/product_detail.html"
    context_object_name = "product"

    def get_queryset(self):
        return Product.objects.with_images()

    def get_object(self, queryset=None):
        product = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        if not product.is_active and not self.request.user.is_staff:
            raise Http404("This product is not available.")
        return product

    def get(self, request, *args, **kwargs):
        self.object = self.get_object()
        if kwargs.get("slug") != (self.object.slug or "product"):
            return redirect(self.object.get_absolute_url(), permanent=True)
        return self.render_to_response(self.get_context_data(object=self.object))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        product = self.object
        images = product.ordered_images
        # read only when the section is not in the cache (catalog.fragments)
        more = SimpleLazyObject(lambda: more_like_this(product))
        context.update(
            images=images,
            main_image=images[0] if images else None,
            look_widget_enabled=look_widget_enabled(),
            more_like_this=more,
            more_like_this_html=mark_safe(fragments.cached(
                f"more-like-this:{product.pk}",
                lambda: render_to_string("catalog/_more_like_this.html", {"product": product, "more_like_this": more}),
            )),
            look_label=LOOK_FILTER_LABELS.get(product.look_category, ""),
        )
        return context


def more_like_this(product, n=4):
    """Up to ``n`` other active products: for an outfit the newest outfits of its gender (any, when it has none),
    else those of the same type and gender closest in price (ties: the lower id). One query: the ``n`` nearest at or above the price and
    the ``n`` nearest below it, each read along the (article_type, gender, price) index, not a sort of every
    product of the type."""
    similar = Product.objects.active().exclude(pk=product.pk).with_card_image()
    if product.is_outfit:
        outfits = similar.filter(master_category=product.master_category)
        if product.gender:  # a women's look is not followed by girls' or men's ones
            outfits = outfits.filter(gender=product.gender)
        return list(outfits.order_by("-id")[:n])
    same = similar.filter(article_type=product.article_type, gender=product.gender)
    above = same.filter(price__gte=product.price).order_by("price", "id")[:n]
    below = same.filter(price__lt=product.price).order_by("-price", "id")[:n]
    nearest = sorted(above.union(below, all=True), key=lambda other: (abs(other.price - product.price), other.pk))
    return nearest[:n]
